/**
 * The "Hamilton" side panel: live DAG of the current notebook's kernel.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { NotebookConnection } from './connection';
import { formatDuration, renderDag, renderLegend } from './dag';
import { IDagNode, NODE_STATUSES, PROTOCOL } from './protocol';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="2" width="8" height="6" rx="1.5"/>
    <rect x="14" y="2" width="8" height="6" rx="1.5"/>
    <rect x="8" y="16" width="8" height="6" rx="1.5"/>
    <path d="M6 8v3.5c0 .8.7 1.5 1.5 1.5H11v3h2v-3h3.5c.8 0 1.5-.7 1.5-1.5V8h-2v3H8V8z"/>
  </g>
</svg>`;

export const hamiltonIcon = new LabIcon({ name: 'hamilton-nb:dag', svgstr: ICON_SVG });

export class HamiltonPanel extends Widget {
  /**
   * @param onNodeClick called with the notebook and node when a node with a cell is clicked.
   */
  constructor(
    private readonly _onNodeClick: (panel: NotebookPanel, node: IDagNode) => void
  ) {
    super();
    this.id = 'hamilton-nb-panel';
    this.addClass('hnb-panel');
    this.title.icon = hamiltonIcon;
    this.title.label = 'Hamilton';
    this.title.caption = 'Hamilton: live DAG of this notebook';

    const header = document.createElement('div');
    header.className = 'hnb-header';
    const heading = document.createElement('h2');
    heading.className = 'hnb-title';
    heading.textContent = 'Hamilton';
    header.appendChild(heading);
    this._refreshButton = this._button('Refresh', 'Ask the kernel for the current DAG state', () =>
      this._connection?.refresh()
    );
    this._restoreButton = this._button(
      'Restore',
      'Restore the last saved state of the DAG from the cache (%hamilton restore)',
      () => this._connection?.send({ type: 'restore', protocol: PROTOCOL })
    );
    header.appendChild(this._refreshButton);
    header.appendChild(this._restoreButton);
    this.node.appendChild(header);

    this._notebookLine = document.createElement('div');
    this._notebookLine.className = 'hnb-notebook';
    this.node.appendChild(this._notebookLine);

    this._message = document.createElement('div');
    this._message.className = 'hnb-message';
    this.node.appendChild(this._message);

    this._summary = document.createElement('div');
    this._summary.className = 'hnb-summary';
    this.node.appendChild(this._summary);

    this._graph = document.createElement('div');
    this._graph.className = 'hnb-graph';
    this.node.appendChild(this._graph);

    this.node.appendChild(renderLegend(NODE_STATUSES));
    this._render();
  }

  /** The connection of the notebook whose DAG is shown. */
  get connection(): NotebookConnection | null {
    return this._connection;
  }

  set connection(connection: NotebookConnection | null) {
    if (connection === this._connection) {
      return;
    }
    this._connection?.changed.disconnect(this._scheduleRender, this);
    this._connection = connection;
    connection?.changed.connect(this._scheduleRender, this);
    this._render();
  }

  dispose(): void {
    this.connection = null;
    cancelAnimationFrame(this._frame);
    super.dispose();
  }

  private _button(label: string, title: string, onClick: () => void): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'jp-Button jp-mod-minimal hnb-button';
    button.textContent = label;
    button.title = title;
    button.addEventListener('click', onClick);
    return button;
  }

  /** State messages can arrive in bursts during a run: draw at most once per frame. */
  private _scheduleRender(): void {
    if (!this.isVisible) {
      this._dirty = true;
      return;
    }
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._dirty) {
      this._render();
    }
  }

  private _render(): void {
    this._dirty = false;
    const conn = this._connection;
    const connected = conn?.status === 'connected' && conn.state !== null;
    this.node.dataset.status = conn ? conn.status : 'no_notebook';
    this._refreshButton.disabled = !conn || conn.status === 'no_kernel';
    this._restoreButton.disabled = !connected;
    this._notebookLine.textContent = conn ? conn.panel.context.localPath : '';
    this._summary.textContent = '';
    this._graph.replaceChildren();

    if (!conn) {
      this._setMessage('Open a notebook to see its Hamilton dataflow.');
      return;
    }
    switch (conn.status) {
      case 'no_kernel':
        this._setMessage('This notebook has no kernel.');
        return;
      case 'connecting':
        this._setMessage('Connecting to the kernel…');
        return;
      case 'not_loaded':
        this._setMessage('hamilton_nb not loaded in this kernel', 'Run %load_ext hamilton_nb in a cell.');
        return;
    }
    const state = conn.state;
    if (!state) {
      this._setMessage('Waiting for the kernel…');
      return;
    }
    if (!state.nodes.length) {
      this._setMessage('No %%hamilton cells have run in this kernel yet.');
      return;
    }
    this._setMessage('');

    const counts = new Map<string, number>();
    let total = 0;
    for (const n of state.nodes) {
      counts.set(n.status, (counts.get(n.status) ?? 0) + 1);
      total += n.duration ?? 0;
    }
    const parts = [`${state.nodes.length} node${state.nodes.length === 1 ? '' : 's'}`];
    for (const status of NODE_STATUSES) {
      const k = counts.get(status);
      if (k) {
        parts.push(`${k} ${status.replace('_', ' ')}`);
      }
    }
    if (state.running) {
      parts.push('running…');
    } else if (state.run_id !== null) {
      parts.push(`run #${state.run_id}`, `last durations sum ${formatDuration(total)}`);
    }
    if (conn.staleCells.size) {
      parts.push(`${conn.staleCells.size} stale cell${conn.staleCells.size === 1 ? '' : 's'}`);
    }
    this._summary.textContent = parts.join(' · ');

    const editedNodes = new Set<string>();
    for (const c of state.cells) {
      if (conn.editedCells.has(c.cell_id)) {
        c.nodes.forEach(n => editedNodes.add(n));
      }
    }
    const svg = renderDag(state.nodes, {
      activeCellId: conn.panel.content.activeCell?.model.id ?? null,
      edited: editedNodes,
      onNodeClick: node => this._onNodeClick(conn.panel, node)
    });
    this._graph.appendChild(svg);
  }

  private _setMessage(text: string, hint = ''): void {
    this._message.replaceChildren();
    this._message.hidden = !text;
    if (text) {
      const p = document.createElement('p');
      p.textContent = text;
      this._message.appendChild(p);
    }
    if (hint) {
      const p = document.createElement('p');
      p.className = 'hnb-hint';
      p.textContent = hint;
      this._message.appendChild(p);
    }
  }

  private _connection: NotebookConnection | null = null;
  private _frame = 0;
  private _dirty = false;
  private readonly _refreshButton: HTMLButtonElement;
  private readonly _restoreButton: HTMLButtonElement;
  private readonly _notebookLine: HTMLElement;
  private readonly _message: HTMLElement;
  private readonly _summary: HTMLElement;
  private readonly _graph: HTMLElement;
}
