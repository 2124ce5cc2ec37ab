/**
 * Drawing of a Hamilton DAG (used by the side panel and the MIME renderer, and so by the
 * ipywidgets panel's graph tab, which outputs the MIME type).
 *
 * The layout is @dagrejs/dagre's layered layout (ranks, crossing reduction, edge routing); this
 * file only draws it. Every node is drawn as `<g class="hnb-node" data-node=NAME data-status=…>`.
 * The drawing fits the width it is given and can be zoomed (buttons, Ctrl/⌘ + wheel) and
 * panned (drag) when the DAG is large. Built with DOM APIs only (no markup strings).
 */
import dagre from '@dagrejs/dagre';

import { IDagNode, NODE_STATUSES, NodeStatus } from './protocol';

const SVG_NS = 'http://www.w3.org/2000/svg';

const NODE_HEIGHT = 28;
const MIN_NODE_WIDTH = 64;
const CHAR_WIDTH = 7;
const MARGIN = 10;
export const MAX_LABEL_CHARS = 24;

export const STATUS_LABELS: Record<NodeStatus, string> = {
  computed: 'computed',
  cached: 'cached',
  running: 'running',
  queued: 'queued',
  stale: 'stale',
  failed: 'failed',
  skipped: 'skipped',
  cleared: 'cleared',
  never_run: 'never run'
};

/** What each colour means, in the order of the widget panel's legend. */
export const LEGEND_STATUSES: readonly NodeStatus[] = NODE_STATUSES;

export interface ILaidOutNode {
  node: IDagNode;
  x: number; // left
  y: number; // top
  width: number;
  label: string;
}

export interface ILaidOutEdge {
  from: string;
  to: string;
  points: { x: number; y: number }[];
}

export interface ILayout {
  nodes: Map<string, ILaidOutNode>;
  edges: ILaidOutEdge[];
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
  /** 'TB' (top to bottom) or 'LR' (left to right); see `aspect`. */
  direction?: 'TB' | 'LR';
  /**
   * The width/height ratio of the room the drawing has: the direction whose layout is closest
   * to it is used (a wide, flat DAG drawn top-to-bottom in the narrow side panel shrinks to
   * illegible; left-to-right it fills the panel's height instead).
   */
  aspect?: number;
  /** How a cell is named for people (e.g. "[5]"), for tooltips. */
  cellLabel?: (cellId: string) => string | null;
}

/**
 * Names that fit `limit` characters: long ones keep their start and end around a "…", and two
 * names never shorten to the same text (the cut widens until they differ). Same rule as the
 * widget panel's `short_names`.
 */
export function shortNames(names: readonly string[], limit = MAX_LABEL_CHARS): Map<string, string> {
  const cut = (n: string, keep: number): string => {
    if (keep >= n.length) {
      return n;
    }
    const head = Math.ceil(keep / 2);
    return `${n.slice(0, head)}…${n.slice(n.length - (keep - head))}`;
  };
  const out = new Map<string, string>();
  for (const n of names) {
    out.set(n, n.length <= limit ? n : cut(n, limit - 1));
  }
  for (let round = 0; round < 200; round++) {
    const seen = new Map<string, string[]>();
    for (const [n, s] of out) {
      seen.set(s, [...(seen.get(s) ?? []), n]);
    }
    const clashes = [...seen.values()].filter(ns => ns.length > 1);
    if (!clashes.length) {
      break;
    }
    for (const ns of clashes) {
      for (const n of ns) {
        const s = out.get(n)!;
        if (s !== n) {
          out.set(n, cut(n, s.length - 1 + 2));
        }
      }
    }
  }
  return out;
}

/** Where each node and edge goes: all of a layout that depends on the DAG's shape alone. */
interface IGeometry {
  nodes: Map<string, { x: number; y: number; width: number; label: string }>;
  edges: ILaidOutEdge[];
  width: number;
  height: number;
}

/**
 * Layouts by shape (direction, names, dependencies), the most recently used last. dagre is
 * nearly all of what drawing a state costs (two layouts of a 600-node DAG took ~300 ms), and
 * most states differ from the one before in statuses only: a cell re-run, a click on another
 * cell. A shape is laid out once, so the drawing does not move either.
 */
const GEOMETRIES = new Map<string, IGeometry>();
const GEOMETRIES_KEPT = 8;

/** How many layouts dagre computed (read by tests: a state of the same shape adds none). */
export let layoutsComputed = 0;

function shapeKey(nodes: readonly IDagNode[], direction: string): string {
  return direction + '\u0000' + nodes.map(n => `${n.name}\u0001${n.deps.join('\u0001')}`).join('\u0000');
}

function computeGeometry(nodes: readonly IDagNode[], direction: 'TB' | 'LR'): IGeometry {
  layoutsComputed++;
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({
    rankdir: direction,
    nodesep: direction === 'TB' ? 14 : 10,
    ranksep: direction === 'TB' ? 34 : 40,
    marginx: MARGIN,
    marginy: MARGIN
  });
  g.setDefaultEdgeLabel(() => ({}));
  const labels = shortNames(nodes.map(n => n.name));
  const names = new Set(nodes.map(n => n.name));
  for (const n of nodes) {
    const label = labels.get(n.name) ?? n.name;
    const width = Math.max(MIN_NODE_WIDTH, label.length * CHAR_WIDTH + 24);
    g.setNode(n.name, { width, height: NODE_HEIGHT, label });
  }
  for (const n of nodes) {
    for (const dep of n.deps) {
      if (names.has(dep) && dep !== n.name) {
        g.setEdge(dep, n.name);
      }
    }
  }
  dagre.layout(g);
  const out = new Map<string, { x: number; y: number; width: number; label: string }>();
  for (const n of nodes) {
    const d = g.node(n.name) as { x: number; y: number; width: number; label: string };
    out.set(n.name, {
      x: d.x - d.width / 2,
      y: d.y - NODE_HEIGHT / 2,
      width: d.width,
      label: d.label
    });
  }
  const edges: ILaidOutEdge[] = g.edges().map(e => ({
    from: e.v,
    to: e.w,
    points: ((g.edge(e) as { points?: { x: number; y: number }[] }).points ?? []).slice()
  }));
  const graph = g.graph() as { width?: number; height?: number };
  return {
    nodes: out,
    edges,
    width: Math.ceil(graph.width ?? 0),
    height: Math.ceil(graph.height ?? 0)
  };
}

/**
 * Lay `nodes` out with dagre (once per shape, see `GEOMETRIES`). Unknown dependencies are
 * ignored. The layout's edges are shared between calls: read them, do not change them.
 */
export function layout(nodes: readonly IDagNode[], direction: 'TB' | 'LR' = 'TB'): ILayout {
  const key = shapeKey(nodes, direction);
  let geometry = GEOMETRIES.get(key);
  if (geometry) {
    GEOMETRIES.delete(key); // (set again below: the most recently used)
  } else {
    geometry = computeGeometry(nodes, direction);
    while (GEOMETRIES.size >= GEOMETRIES_KEPT) {
      GEOMETRIES.delete(GEOMETRIES.keys().next().value as string);
    }
  }
  GEOMETRIES.set(key, geometry);
  const out = new Map<string, ILaidOutNode>();
  for (const n of nodes) {
    out.set(n.name, { node: n, ...geometry.nodes.get(n.name)! });
  }
  return { nodes: out, edges: geometry.edges, width: geometry.width, height: geometry.height };
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

function tooltip(n: IDagNode, edited: boolean, cell: string | null): string {
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
  if (n.where) {
    lines.push(`ran on ${n.where}`);
  }
  if (n.deps.length) {
    lines.push(`depends on ${n.deps.join(', ')}`);
  }
  if (cell) {
    lines.push(`defined in cell ${cell}`);
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

function edgePath(points: { x: number; y: number }[]): string {
  if (!points.length) {
    return '';
  }
  const [first, ...rest] = points;
  return `M ${first.x} ${first.y} ` + rest.map(p => `L ${p.x} ${p.y}`).join(' ');
}

/** Draw `nodes` as a new `<svg class="hnb-dag">` element (natural size; see `renderDagView`). */
export function renderDag(
  nodes: readonly IDagNode[],
  options: IRenderOptions = {}
): SVGSVGElement {
  let lay = layout(nodes, options.direction ?? 'TB');
  if (options.aspect && nodes.length > 1) {
    const other = layout(nodes, (options.direction ?? 'TB') === 'TB' ? 'LR' : 'TB');
    const misfit = (l: ILayout): number =>
      Math.abs(Math.log(Math.max(1, l.width) / Math.max(1, l.height) / options.aspect!));
    if (misfit(other) < misfit(lay)) {
      lay = other;
    }
  }
  const root = svg('svg', {
    class: 'hnb-dag',
    width: lay.width,
    height: lay.height,
    viewBox: `0 0 ${lay.width} ${lay.height}`,
    role: 'img',
    'aria-label': `Hamilton DAG with ${lay.nodes.size} nodes`,
    // (tests check that a state of the same shape is drawn without laying it out again)
    'data-layouts-computed': layoutsComputed
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
  for (const e of lay.edges) {
    edges.appendChild(
      svg('path', {
        class: 'hnb-edge',
        d: edgePath(e.points),
        'marker-end': `url(#${marker.id})`,
        'data-from': e.from,
        'data-to': e.to
      })
    );
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
    const cell = n.cell_id && options.cellLabel ? options.cellLabel(n.cell_id) : null;
    title.textContent = tooltip(n, edited, cell);
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
        if ((root as unknown as { hnbDragged?: boolean }).hnbDragged) {
          return; // the end of a pan, not a click
        }
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

/**
 * The DAG in a view that fits the available width (never wider than its container) and can be
 * zoomed and panned: buttons −, +, "fit"; Ctrl/⌘ + wheel zooms at the pointer; dragging pans.
 */
export function renderDagView(
  nodes: readonly IDagNode[],
  options: IRenderOptions = {}
): HTMLElement {
  const root = renderDag(nodes, options);
  const W = Number(root.getAttribute('width'));
  const H = Number(root.getAttribute('height'));
  const view = document.createElement('div');
  view.className = 'hnb-dag-view';
  const bar = document.createElement('div');
  bar.className = 'hnb-zoombar';
  const frame = document.createElement('div');
  frame.className = 'hnb-dag-frame';
  // The SVG scales to the frame's width (viewBox + width 100%, capped at its natural size).
  root.setAttribute('width', '100%');
  root.removeAttribute('height');
  root.style.maxWidth = `${W}px`;
  root.style.maxHeight = '70vh';
  frame.appendChild(root);

  let box = { x: 0, y: 0, w: W, h: H };
  const apply = (): void => {
    root.setAttribute('viewBox', `${box.x} ${box.y} ${box.w} ${box.h}`);
    view.dataset.zoom = (W / box.w).toFixed(2);
  };
  const zoom = (factor: number, cx = box.x + box.w / 2, cy = box.y + box.h / 2): void => {
    const w = Math.min(W, Math.max(W / 20, box.w / factor));
    const h = (w * H) / W;
    box = {
      x: cx - ((cx - box.x) * w) / box.w,
      y: cy - ((cy - box.y) * h) / box.h,
      w,
      h
    };
    if (w >= W) {
      box = { x: 0, y: 0, w: W, h: H };
    }
    apply();
  };
  const button = (label: string, title: string, cls: string, onClick: () => void): void => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `jp-Button jp-mod-minimal hnb-zoom ${cls}`;
    b.textContent = label;
    b.title = title;
    b.addEventListener('click', onClick);
    bar.appendChild(b);
  };
  button('−', 'Zoom out', 'hnb-zoom-out', () => zoom(1 / 1.5));
  button('+', 'Zoom in', 'hnb-zoom-in', () => zoom(1.5));
  button('fit', 'Show the whole DAG', 'hnb-zoom-fit', () => {
    box = { x: 0, y: 0, w: W, h: H };
    apply();
  });
  root.addEventListener(
    'wheel',
    event => {
      if (!(event.ctrlKey || event.metaKey)) {
        return; // plain wheel scrolls the page as everywhere else
      }
      event.preventDefault();
      const rect = root.getBoundingClientRect();
      const cx = box.x + ((event.clientX - rect.left) / rect.width) * box.w;
      const cy = box.y + ((event.clientY - rect.top) / rect.height) * box.h;
      zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, cx, cy);
    },
    { passive: false }
  );
  let drag: { x: number; y: number; bx: number; by: number } | null = null;
  const state = root as unknown as { hnbDragged?: boolean };
  root.addEventListener('pointerdown', event => {
    if (box.w >= W) {
      return; // nothing to pan at full view
    }
    drag = { x: event.clientX, y: event.clientY, bx: box.x, by: box.y };
    state.hnbDragged = false;
  });
  root.addEventListener('pointermove', event => {
    if (!drag) {
      return;
    }
    const rect = root.getBoundingClientRect();
    const dx = ((event.clientX - drag.x) / rect.width) * box.w;
    const dy = ((event.clientY - drag.y) / rect.height) * box.h;
    if (Math.abs(event.clientX - drag.x) + Math.abs(event.clientY - drag.y) > 3) {
      state.hnbDragged = true;
      root.classList.add('hnb-panning');
    }
    box = { ...box, x: drag.bx - dx, y: drag.by - dy };
    apply();
  });
  const end = (): void => {
    drag = null;
    root.classList.remove('hnb-panning');
    window.setTimeout(() => (state.hnbDragged = false), 0);
  };
  root.addEventListener('pointerup', end);
  root.addEventListener('pointerleave', end);
  apply();
  view.appendChild(bar);
  view.appendChild(frame);
  return view;
}

/** A small HTML legend of the node colours. */
export function renderLegend(statuses: readonly NodeStatus[] = LEGEND_STATUSES): HTMLElement {
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
