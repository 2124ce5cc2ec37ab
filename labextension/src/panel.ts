/**
 * The "Hamilton" side panel: live DAG of the current notebook's kernel.
 */
import { Notification } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { NotebookConnection } from './connection';
import { formatDuration, renderDagView, renderLegend } from './dag';
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
    this._runStaleButton = this._button(
      'Run stale',
      'Recompute every stale node and bind the new values (%hamilton run --stale)',
      () => this.runStale()
    );
    this._runStaleButton.classList.add('hnb-run-stale');
    header.appendChild(this._runStaleButton);
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

    this._differ = document.createElement('div');
    this._differ.className = 'hnb-differ';
    this.node.appendChild(this._differ);

    this._graph = document.createElement('div');
    this._graph.className = 'hnb-graph';
    this.node.appendChild(this._graph);

    this.node.appendChild(renderLegend(NODE_STATUSES));
    this._render();
  }

  /** Ask the kernel to recompute every stale node (kernel-side stale: code it registered). */
  runStale(): void {
    const conn = this._connection;
    if (!conn || !conn.send({ type: 'run_stale', protocol: PROTOCOL })) {
      return;
    }
    if (conn.editedCells.size) {
      Notification.info(
        'Hamilton: edited cells are not re-registered by "Run stale": run those cells to use ' +
          'their new code.',
        { autoClose: 6000 }
      );
    }
  }

  /**
   * Write the kernel's registered code (e.g. a restored checkpoint's) into the notebook cells
   * whose text differs from it, in one step that "Undo" reverts. Returns the changed cell ids.
   */
  async writeKernelCode(): Promise<string[]> {
    const conn = this._connection;
    const model = conn?.panel.content.model;
    if (!conn || !model) {
      return [];
    }
    const sources = await conn.requestSources();
    const before = new Map<string, string>();
    const cells = model.cells;
    model.sharedModel.transact(() => {
      for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        const body = sources.get(cell.id);
        if (body === undefined || !conn.editedCells.has(cell.id)) {
          continue;
        }
        const old = cell.sharedModel.getSource();
        const magic = old.replace(/^(?:[ \t]*\r?\n)+/, '').split('\n', 1)[0];
        before.set(cell.id, old);
        cell.sharedModel.setSource(`${magic}\n${body}`);
      }
    });
    if (before.size) {
      const undo = (): void => {
        model.sharedModel.transact(() => {
          for (let i = 0; i < cells.length; i++) {
            const cell = cells.get(i);
            const old = before.get(cell.id);
            if (old !== undefined) {
              cell.sharedModel.setSource(old);
            }
          }
        });
      };
      this._lastUndo = undo;
      Notification.success(
        `Hamilton: wrote the kernel's code into ${before.size} cell${before.size === 1 ? '' : 's'}.`,
        {
          autoClose: 10000,
          actions: [{ label: 'Undo', callback: () => this.undoWrite() }]
        }
      );
    }
    return [...before.keys()];
  }

  /** Put back the cell texts that the last `writeKernelCode` replaced. */
  undoWrite(): boolean {
    const undo = this._lastUndo;
    this._lastUndo = null;
    undo?.();
    return !!undo;
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
    this._runStaleButton.disabled = !connected || !!conn?.state?.running;
    this._differ.replaceChildren();
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

    const nodes = conn.displayNodes();
    const counts = new Map<string, number>();
    let total = 0;
    for (const n of nodes) {
      counts.set(n.status, (counts.get(n.status) ?? 0) + 1);
      total += n.duration ?? 0;
    }
    const parts = [`${nodes.length} node${nodes.length === 1 ? '' : 's'}`];
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
    this._renderDiffer(conn);
    const view = renderDagView(nodes, {
      activeCellId: conn.panel.content.activeCell?.model.id ?? null,
      edited: editedNodes,
      onNodeClick: node => this._onNodeClick(conn.panel, node),
      cellLabel: id => conn.cellLabel(id),
      aspect: Math.max(150, this.node.clientWidth) / Math.max(300, this.node.clientHeight - 220)
    });
    this._graph.appendChild(view);
  }

  /** Cells whose text differs from the code the kernel runs, with the offer to write it back. */
  private _renderDiffer(conn: NotebookConnection): void {
    const state = conn.state;
    const edited = state ? state.cells.filter(c => conn.editedCells.has(c.cell_id)) : [];
    if (!edited.length) {
      return;
    }
    const title = document.createElement('div');
    title.className = 'hnb-differ-title';
    title.textContent =
      `${edited.length} cell${edited.length === 1 ? ' differs' : 's differ'} from the code the kernel ` +
      'runs (edited since, or a restored checkpoint):';
    this._differ.appendChild(title);
    const ul = document.createElement('ul');
    for (const c of edited) {
      const li = document.createElement('li');
      li.dataset.cellId = c.cell_id;
      const label = conn.cellLabel(c.cell_id);
      li.textContent = `${label ?? ''} ${c.label ?? c.nodes.join(', ')}`.trim();
      ul.appendChild(li);
    }
    this._differ.appendChild(ul);
    const write = this._button(
      "Write the kernel's code into these cells",
      'Replace the text of these cells by the code the kernel registered (undoable)',
      () => void this.writeKernelCode()
    );
    write.classList.add('hnb-write-back');
    this._differ.appendChild(write);
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
  private readonly _runStaleButton: HTMLButtonElement;
  private readonly _differ: HTMLElement;
  private _lastUndo: (() => void) | null = null;
  private readonly _notebookLine: HTMLElement;
  private readonly _message: HTMLElement;
  private readonly _summary: HTMLElement;
  private readonly _graph: HTMLElement;
}
