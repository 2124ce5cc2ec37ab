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
  | IErrorMessage
  | INoticeMessage
  | ICellSourcesMessage;

export type FrontendMessage =
  | { type: 'hello'; protocol: number }
  | { type: 'request_state'; protocol: number }
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
    if (!isObject(n) || typeof n.name !== 'string') {
      continue;
    }
    nodes.push({
      name: n.name,
      cell_id: typeof n.cell_id === 'string' ? n.cell_id : null,
      kind: n.kind === 'input' ? 'input' : 'function',
      deps: asStringArray(n.deps),
      status: asStatus(n.status),
      reason: asString(n.reason),
      duration: typeof n.duration === 'number' ? n.duration : null,
      code_version: typeof n.code_version === 'string' ? n.code_version : null,
      ...(typeof n.where === 'string' && n.where ? { where: n.where } : {})
    });
  }
  const cells: IDagCell[] = [];
  if (Array.isArray(raw.cells)) {
    for (const c of raw.cells) {
      if (!isObject(c) || typeof c.cell_id !== 'string') {
        continue;
      }
      cells.push({
        cell_id: c.cell_id,
        nodes: asStringArray(c.nodes),
        source_hash: asString(c.source_hash),
        stale: c.stale === true,
        ...(typeof c.label === 'string' ? { label: c.label } : {})
      });
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
