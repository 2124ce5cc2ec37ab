/**
 * MIME renderer for `application/vnd.hamilton-nb.run+json`: a static drawing of the DAG of a run.
 *
 * The data is a STATE object (docs/protocol.md), either bare or as `{"state": STATE}`; it renders
 * from the saved notebook too, without a kernel.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { formatDuration, renderDag } from './dag';
import { RUN_MIME_TYPE, parseState } from './protocol';

export class RunRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly _mimeType: string) {
    super();
    this.addClass('hnb-run-output');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const raw = model.data[this._mimeType] as unknown;
    const wrapped =
      typeof raw === 'object' && raw !== null && 'state' in raw
        ? (raw as { state: unknown }).state
        : raw;
    const state = parseState(wrapped);
    this.node.replaceChildren();
    if (!state) {
      const p = document.createElement('p');
      p.className = 'hnb-message';
      p.textContent = 'Invalid Hamilton run data.';
      this.node.appendChild(p);
      return Promise.resolve();
    }
    const counts = new Map<string, number>();
    let total = 0;
    for (const n of state.nodes) {
      counts.set(n.status, (counts.get(n.status) ?? 0) + 1);
      total += n.duration ?? 0;
    }
    const summary = document.createElement('div');
    summary.className = 'hnb-summary';
    const parts = [
      state.run_id !== null ? `Hamilton run #${state.run_id}` : 'Hamilton DAG',
      `${state.nodes.length} node${state.nodes.length === 1 ? '' : 's'}`,
      ...[...counts].map(([status, k]) => `${k} ${status.replace('_', ' ')}`)
    ];
    if (total > 0) {
      parts.push(`${formatDuration(total)}`);
    }
    summary.textContent = parts.join(' · ');
    this.node.appendChild(summary);
    this.node.appendChild(renderDag(state.nodes));
    return Promise.resolve();
  }
}

const extension: IRenderMime.IExtension = {
  id: 'hamilton-nb:run-renderer',
  description: 'Renders Hamilton run results as a DAG.',
  rendererFactory: {
    safe: true,
    mimeTypes: [RUN_MIME_TYPE],
    createRenderer: options => new RunRenderer(options.mimeType)
  },
  rank: 0,
  dataType: 'json'
};

export default extension;
