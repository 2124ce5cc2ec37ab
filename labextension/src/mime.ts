/**
 * MIME renderer for `application/vnd.hamilton-nb.run+json`: a static drawing of the DAG of a run.
 *
 * The data is a STATE object (docs/protocol.md), either bare or as `{"state": STATE}`; it renders
 * from the saved notebook too, without a kernel. The ipywidgets panel's graph tab outputs this
 * type (so both front-ends share one layout), and its saved outputs carry it as the snapshot the
 * lab extension shows when the widget model is gone (see `index.ts`).
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { STATUS_LABELS, formatDuration, renderDagView, renderLegend } from './dag';
import { IDagState, NODE_STATUSES, RUN_MIME_TYPE, parseState } from './protocol';

/** Fill `node` with the summary, DAG and (optionally) a table of `raw` (a STATE or {state}). */
export function renderRun(node: HTMLElement, raw: unknown, table = false): IDagState | null {
  const wrapped =
    typeof raw === 'object' && raw !== null && 'state' in raw
      ? (raw as { state: unknown }).state
      : raw;
  const state = parseState(wrapped);
  node.replaceChildren();
  if (!state) {
    const p = document.createElement('p');
    p.className = 'hnb-message';
    p.textContent = 'Invalid Hamilton run data.';
    node.appendChild(p);
    return null;
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
    ...NODE_STATUSES.filter(s => counts.has(s)).map(s => `${counts.get(s)} ${STATUS_LABELS[s]}`)
  ];
  if (state.running) {
    parts.push('running…');
  }
  if (total > 0) {
    parts.push(`${formatDuration(total)}`);
  }
  summary.textContent = parts.join(' · ');
  node.appendChild(summary);
  node.appendChild(renderDagView(state.nodes, { direction: 'LR', aspect: 3 }));
  if (table) {
    const t = document.createElement('table');
    t.className = 'hnb-table';
    const head = t.createTHead().insertRow();
    for (const h of ['node', 'status', 'why', 'took']) {
      const th = document.createElement('th');
      th.textContent = h;
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const n of state.nodes.filter(x => x.kind !== 'input')) {
      const row = body.insertRow();
      row.dataset.node = n.name;
      row.dataset.status = n.status;
      for (const text of [
        n.name,
        STATUS_LABELS[n.status],
        n.reason,
        n.duration !== null && n.status !== 'cached' ? formatDuration(n.duration) : ''
      ]) {
        const td = row.insertCell();
        td.textContent = text;
        td.title = text;
      }
    }
    node.appendChild(t);
  }
  const present = NODE_STATUSES.filter(s => counts.has(s));
  if (present.length) {
    node.appendChild(renderLegend(present));
  }
  return state;
}

export class RunRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly _mimeType: string) {
    super();
    this.addClass('hnb-run-output');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    renderRun(this.node, model.data[this._mimeType] as unknown);
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
