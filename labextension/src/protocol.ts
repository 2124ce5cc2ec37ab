/**
 * Types of the kernel <-> JupyterLab comm protocol, version 1 (docs/protocol.md).
 */

/** Comm target name, on both sides. */
export const COMM_TARGET = 'hamilton_nb';

/** Protocol version sent with every message. */
export const PROTOCOL = 1;

/** MIME type of a rendered run result. */
export const RUN_MIME_TYPE = 'application/vnd.hamilton-nb.run+json';

export type NodeStatus =
  | 'computed'
  | 'cached'
  | 'failed'
  | 'skipped'
  | 'stale'
  | 'never_run'
  | 'running'
  | 'queued'
  | 'cleared';

export const NODE_STATUSES: readonly NodeStatus[] = [
  'cached',
  'computed',
  'running',
  'queued',
  'stale',
  'failed',
  'skipped',
  'cleared',
  'never_run'
];

export interface IDagNode {
  name: string;
  cell_id: string | null;
  kind: 'function' | 'input';
  deps: string[];
  status: NodeStatus;
  reason: string;
  duration: number | null;
  code_version: string | null;
  /** Where the node last ran (the engine), when the kernel says. */
  where?: string;
}

export interface IDagCell {
  cell_id: string;
  nodes: string[];
  source_hash: string;
  stale: boolean;
  /** The cell as people know it (its first node). */
  label?: string;
}

export interface IDagState {
  session_id: string;
  run_id: number | null;
  running: boolean;
  nodes: IDagNode[];
  cells: IDagCell[];
}

export interface IStateMessage {
  type: 'state';
  protocol: number;
  state: IDagState;
  /** The state's number (a `state_delta` names the one it applies to). */
  seq?: number;
}

/** What the front-end names in `features` to be sent `state_delta` messages. */
export const DELTA_FEATURE = 'state_delta';

/** What changed since state number `base` (docs/protocol.md). */
export interface IStateDeltaMessage {
  type: 'state_delta';
  protocol: number;
  base: number;
  seq: number;
  session_id: string;
  run_id: number | null;
  running: boolean;
  n_nodes: number;
  n_cells: number;
  nodes: [number, unknown][];
  cells: [number, unknown][];
}

export interface IErrorMessage {
  type: 'error';
  protocol: number;
  message: string;
}

export interface INoticeMessage {
  type: 'notice';
  protocol: number;
  message: string;
}

export interface ICellSourcesMessage {
  type: 'cell_sources';
  protocol: number;
  cells: { cell_id: string; body: string }[];
}

export type KernelMessage =
  | IStateMessage
  | IStateDeltaMessage
  | IErrorMessage
  | INoticeMessage
  | ICellSourcesMessage;

export type FrontendMessage =
  | { type: 'hello'; protocol: number; features?: string[] }
  | { type: 'request_state'; protocol: number; features?: string[] }
  | { type: 'run_cell'; protocol: number; cell_id: string }
  | { type: 'clear_cell'; protocol: number; cell_id: string }
  | { type: 'restore'; protocol: number }
  | { type: 'run_stale'; protocol: number }
  | { type: 'cell_sources'; protocol: number };

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function asString(x: unknown, fallback = ''): string {
  return typeof x === 'string' ? x : fallback;
}

function asStringArray(x: unknown): string[] {
  return Array.isArray(x) ? x.filter((v): v is string => typeof v === 'string') : [];
}

function asStatus(x: unknown): NodeStatus {
  return (NODE_STATUSES as readonly unknown[]).includes(x)
    ? (x as NodeStatus)
    : 'never_run';
}

function parseNode(n: unknown): IDagNode | null {
  if (!isObject(n) || typeof n.name !== 'string') {
    return null;
  }
  return {
    name: n.name,
    cell_id: typeof n.cell_id === 'string' ? n.cell_id : null,
    kind: n.kind === 'input' ? 'input' : 'function',
    deps: asStringArray(n.deps),
    status: asStatus(n.status),
    reason: asString(n.reason),
    duration: typeof n.duration === 'number' ? n.duration : null,
    code_version: typeof n.code_version === 'string' ? n.code_version : null,
    ...(typeof n.where === 'string' && n.where ? { where: n.where } : {})
  };
}

function parseCell(c: unknown): IDagCell | null {
  if (!isObject(c) || typeof c.cell_id !== 'string') {
    return null;
  }
  return {
    cell_id: c.cell_id,
    nodes: asStringArray(c.nodes),
    source_hash: asString(c.source_hash),
    stale: c.stale === true,
    ...(typeof c.label === 'string' ? { label: c.label } : {})
  };
}

/**
 * Validate and normalise a STATE object coming from the kernel (or a notebook output).
 *
 * Returns `null` if `raw` is not a state object at all; tolerates missing optional fields.
 */
export function parseState(raw: unknown): IDagState | null {
  if (!isObject(raw) || !Array.isArray(raw.nodes)) {
    return null;
  }
  const nodes: IDagNode[] = [];
  for (const n of raw.nodes) {
    const node = parseNode(n);
    if (node) {
      nodes.push(node);
    }
  }
  const cells: IDagCell[] = [];
  if (Array.isArray(raw.cells)) {
    for (const c of raw.cells) {
      const cell = parseCell(c);
      if (cell) {
        cells.push(cell);
      }
    }
  }
  return {
    session_id: asString(raw.session_id),
    run_id: typeof raw.run_id === 'number' ? raw.run_id : null,
    running: raw.running === true,
    nodes,
    cells
  };
}

function replaced<T>(
  items: readonly T[],
  changes: unknown,
  size: unknown,
  parse: (x: unknown) => T | null
): T[] | null {
  if (!Array.isArray(changes) || size !== items.length) {
    return null;
  }
  const out = items.slice();
  for (const change of changes) {
    if (!Array.isArray(change) || change.length !== 2) {
      return null;
    }
    const [index, raw] = change as [unknown, unknown];
    const item = parse(raw);
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= out.length || !item) {
      return null;
    }
    out[index] = item;
  }
  return out;
}

/**
 * The state a `state_delta` message makes of `state` (the state it names as its `base`), or
 * `null` when it does not fit it (then the whole state must be asked for).
 */
export function applyDelta(state: IDagState, raw: unknown): IDagState | null {
  if (!isObject(raw) || raw.session_id !== state.session_id) {
    return null;
  }
  const nodes = replaced(state.nodes, raw.nodes, raw.n_nodes, parseNode);
  const cells = replaced(state.cells, raw.cells, raw.n_cells, parseCell);
  if (!nodes || !cells) {
    return null;
  }
  return {
    session_id: state.session_id,
    run_id: typeof raw.run_id === 'number' ? raw.run_id : null,
    running: raw.running === true,
    nodes,
    cells
  };
}
