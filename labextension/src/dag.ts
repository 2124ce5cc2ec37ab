/**
 * Layered SVG drawing of a Hamilton DAG (used by the side panel and the MIME renderer).
 *
 * Every node is drawn as `<g class="hnb-node" data-node=NAME data-status=STATUS>`; nodes are put
 * in rows by dependency depth (longest path from a source), rows ordered by the barycentre of
 * their parents to keep edges short. Built with DOM APIs only (no markup strings).
 */
import { IDagNode, NodeStatus } from './protocol';

const SVG_NS = 'http://www.w3.org/2000/svg';

const NODE_HEIGHT = 28;
const MIN_NODE_WIDTH = 64;
const MAX_NODE_WIDTH = 220;
const CHAR_WIDTH = 7;
const H_GAP = 14;
const V_GAP = 34;
const MARGIN = 10;
const MAX_LABEL_CHARS = 28;

export const STATUS_LABELS: Record<NodeStatus, string> = {
  computed: 'computed',
  cached: 'cached',
  running: 'running',
  stale: 'stale',
  failed: 'failed',
  skipped: 'skipped',
  never_run: 'never run'
};

export interface ILaidOutNode {
  node: IDagNode;
  layer: number;
  x: number;
  y: number;
  width: number;
  label: string;
}

export interface ILayout {
  nodes: Map<string, ILaidOutNode>;
  width: number;
  height: number;
}

export interface IRenderOptions {
  /** Cell ids whose nodes get the `hnb-active` class (the notebook's active cell). */
  activeCellId?: string | null;
  /** Node names whose defining cell was edited since the kernel registered it. */
  edited?: ReadonlySet<string>;
  /** Called when a node that belongs to a cell is clicked (or Enter/Space pressed on it). */
  onNodeClick?: (node: IDagNode) => void;
}

function label(name: string): string {
  return name.length > MAX_LABEL_CHARS ? `${name.slice(0, MAX_LABEL_CHARS - 1)}…` : name;
}

/** Compute the layered layout of `nodes`. Unknown dependencies are ignored; cycles are cut. */
export function layout(nodes: readonly IDagNode[]): ILayout {
  const byName = new Map<string, IDagNode>();
  for (const n of nodes) {
    byName.set(n.name, n);
  }
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) {
      return known;
    }
    if (visiting.has(name)) {
      return 0; // cycle: should not happen in a DAG, but never loop forever
    }
    visiting.add(name);
    let d = 0;
    for (const dep of byName.get(name)?.deps ?? []) {
      if (byName.has(dep) && dep !== name) {
        d = Math.max(d, depthOf(dep) + 1);
      }
    }
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };

  const layers: IDagNode[][] = [];
  for (const n of byName.values()) {
    const d = depthOf(n.name);
    (layers[d] ??= []).push(n);
  }
  for (let i = 0; i < layers.length; i++) {
    layers[i] ??= [];
  }

  // Order: first row by name, then each row by the mean position of its parents.
  const position = new Map<string, number>();
  layers.forEach((row, i) => {
    if (i === 0) {
      row.sort((a, b) => a.name.localeCompare(b.name));
    } else {
      const key = (n: IDagNode): number => {
        const ps = n.deps.map(d => position.get(d)).filter((p): p is number => p !== undefined);
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : Number.MAX_SAFE_INTEGER;
      };
      row.sort((a, b) => key(a) - key(b) || a.name.localeCompare(b.name));
    }
    row.forEach((n, j) => position.set(n.name, j));
  });

  const widthOf = (n: IDagNode): number =>
    Math.min(MAX_NODE_WIDTH, Math.max(MIN_NODE_WIDTH, label(n.name).length * CHAR_WIDTH + 24));
  const rowWidths = layers.map(
    row => row.reduce((w, n) => w + widthOf(n), 0) + Math.max(0, row.length - 1) * H_GAP
  );
  const innerWidth = Math.max(0, ...rowWidths);

  const out = new Map<string, ILaidOutNode>();
  layers.forEach((row, i) => {
    let x = MARGIN + (innerWidth - rowWidths[i]) / 2;
    const y = MARGIN + i * (NODE_HEIGHT + V_GAP);
    for (const n of row) {
      const width = widthOf(n);
      out.set(n.name, { node: n, layer: i, x, y, width, label: label(n.name) });
      x += width + H_GAP;
    }
  });
  return {
    nodes: out,
    width: innerWidth + 2 * MARGIN,
    height: layers.length
      ? MARGIN * 2 + layers.length * NODE_HEIGHT + (layers.length - 1) * V_GAP
      : 0
  };
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {}
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, String(v));
  }
  return el;
}

function tooltip(n: IDagNode, edited: boolean): string {
  const lines = [`${n.name}: ${STATUS_LABELS[n.status]}${n.kind === 'input' ? ' (input)' : ''}`];
  if (edited) {
    lines.push('its cell was edited since it last ran');
  }
  if (n.reason) {
    lines.push(n.reason);
  }
  if (n.duration !== null) {
    lines.push(`took ${formatDuration(n.duration)}`);
  }
  if (n.deps.length) {
    lines.push(`depends on ${n.deps.join(', ')}`);
  }
  return lines.join('\n');
}

export function formatDuration(seconds: number): string {
  if (seconds < 1e-3) {
    return '<1 ms';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 120) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** Draw `nodes` as a new `<svg class="hnb-dag">` element. */
export function renderDag(
  nodes: readonly IDagNode[],
  options: IRenderOptions = {}
): SVGSVGElement {
  const lay = layout(nodes);
  const root = svg('svg', {
    class: 'hnb-dag',
    width: lay.width,
    height: lay.height,
    viewBox: `0 0 ${lay.width} ${lay.height}`,
    role: 'img',
    'aria-label': `Hamilton DAG with ${lay.nodes.size} nodes`
  });

  const defs = svg('defs');
  const marker = svg('marker', {
    id: `hnb-arrow-${Private.nextId++}`,
    viewBox: '0 0 10 10',
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: 'auto-start-reverse'
  });
  marker.appendChild(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'hnb-arrow' }));
  defs.appendChild(marker);
  root.appendChild(defs);

  const edges = svg('g', { class: 'hnb-edges' });
  for (const child of lay.nodes.values()) {
    for (const dep of child.node.deps) {
      const parent = lay.nodes.get(dep);
      if (!parent || parent === child) {
        continue;
      }
      const x1 = parent.x + parent.width / 2;
      const y1 = parent.y + NODE_HEIGHT;
      const x2 = child.x + child.width / 2;
      const y2 = child.y - 1;
      const my = (y1 + y2) / 2;
      const path = svg('path', {
        class: 'hnb-edge',
        d: `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2}`,
        'marker-end': `url(#${marker.id})`,
        'data-from': parent.node.name,
        'data-to': child.node.name
      });
      edges.appendChild(path);
    }
  }
  root.appendChild(edges);

  const group = svg('g', { class: 'hnb-nodes' });
  for (const item of lay.nodes.values()) {
    const n = item.node;
    const edited = options.edited?.has(n.name) ?? false;
    const g = svg('g', {
      class: 'hnb-node',
      'data-node': n.name,
      'data-status': n.status,
      'data-kind': n.kind,
      transform: `translate(${item.x}, ${item.y})`
    });
    if (edited) {
      g.classList.add('hnb-edited');
    }
    if (options.activeCellId && n.cell_id === options.activeCellId) {
      g.classList.add('hnb-active');
    }
    const title = svg('title');
    title.textContent = tooltip(n, edited);
    g.appendChild(title);
    g.appendChild(
      svg('rect', {
        class: 'hnb-node-box',
        width: item.width,
        height: NODE_HEIGHT,
        rx: n.kind === 'input' ? NODE_HEIGHT / 2 : 5
      })
    );
    const text = svg('text', {
      class: 'hnb-node-label',
      x: item.width / 2,
      y: NODE_HEIGHT / 2,
      'dominant-baseline': 'central',
      'text-anchor': 'middle'
    });
    text.textContent = item.label;
    g.appendChild(text);

    const onClick = options.onNodeClick;
    if (onClick && n.cell_id) {
      g.classList.add('hnb-clickable');
      g.setAttribute('tabindex', '0');
      g.setAttribute('role', 'button');
      g.setAttribute('aria-label', `${n.name} (${STATUS_LABELS[n.status]}): go to its cell`);
      g.addEventListener('click', event => {
        event.preventDefault();
        onClick(n);
      });
      g.addEventListener('keydown', event => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          onClick(n);
        }
      });
    }
    group.appendChild(g);
  }
  root.appendChild(group);
  return root;
}

/** A small HTML legend of the node colours. */
export function renderLegend(statuses: readonly NodeStatus[]): HTMLElement {
  const ul = document.createElement('ul');
  ul.className = 'hnb-legend';
  for (const status of statuses) {
    const li = document.createElement('li');
    li.dataset.status = status;
    const swatch = document.createElement('span');
    swatch.className = 'hnb-swatch';
    li.appendChild(swatch);
    li.appendChild(document.createTextNode(STATUS_LABELS[status]));
    ul.appendChild(li);
  }
  return ul;
}

namespace Private {
  // Marker ids must be unique in the document (several DAGs can be visible at once).
  export let nextId = 0;
}
