/**
 * One `NotebookConnection` per open notebook: it keeps the comm to the notebook's kernel, the last
 * DAG state the kernel sent, and the `hnb-stale` class on the notebook's cells.
 */
import { Notification } from '@jupyterlab/apputils';
import { ICellModel } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { bodyHash, hamiltonBody } from './hash';
import {
  applyDelta,
  COMM_TARGET,
  DELTA_FEATURE,
  FrontendMessage,
  IDagNode,
  IDagState,
  PROTOCOL,
  parseState
} from './protocol';

/**
 * - `no_kernel`: the notebook has no kernel (yet).
 * - `connecting`: a `hello` was sent, no answer yet.
 * - `not_loaded`: the kernel has no `hamilton_nb` comm target (not loaded, or not Python).
 * - `connected`: the kernel sent a state.
 */
export type ConnectionStatus = 'no_kernel' | 'connecting' | 'not_loaded' | 'connected';

/** CSS class put on notebook cells that are stale. */
export const STALE_CLASS = 'hnb-stale';

/** Delay between an edit and the stale-marker recomputation. */
const EDIT_DEBOUNCE_MS = 250;

/** Give up waiting for an answer to `hello` (e.g. a kernel without comm support). */
const HELLO_TIMEOUT_MS = 10000;

export class NotebookConnection implements IDisposable {
  constructor(readonly panel: NotebookPanel) {
    const ctx = panel.sessionContext;
    ctx.kernelChanged.connect(this._onKernelChanged, this);
    NotebookActions.executed.connect(this._onExecuted, this);
    panel.content.modelContentChanged.connect(this._scheduleHashes, this);
    panel.content.activeCellChanged.connect(this._emitChanged, this);
    void ctx.ready.then(() => {
      if (!this.isDisposed) {
        this._attach(ctx.session?.kernel ?? null);
      }
    });
    this._attach(ctx.session?.kernel ?? null);
    this._scheduleHashes();
  }

  /** Emitted whenever the status, the state or the stale set changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get status(): ConnectionStatus {
    return this._status;
  }

  /** Last state sent by the kernel (`null` before the first one, and after a restart). */
  get state(): IDagState | null {
    return this._state;
  }

  /** Ids of the cells currently marked stale. */
  get staleCells(): ReadonlySet<string> {
    return this._stale;
  }

  /** Ids of the cells whose own text differs from what the kernel registered. */
  get editedCells(): ReadonlySet<string> {
    return this._edited;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Whether the cell's current text is what the kernel registered for it. */
  isRegisteredUnchanged(cellId: string): boolean {
    const known = this._state?.cells.find(c => c.cell_id === cellId);
    return !!known && this._hashes.get(cellId)?.hash === known.source_hash;
  }

  /**
   * The nodes as they should be shown: the kernel's statuses, plus what only the front-end
   * knows: the nodes of a cell edited since it ran are stale, and so is everything downstream of
   * a stale node (the kernel only knows the code it registered).
   */
  displayNodes(): IDagNode[] {
    const state = this._state;
    if (!state) {
      return [];
    }
    const hasValue = (s: string): boolean => s === 'computed' || s === 'cached' || s === 'cleared';
    const edited = new Set<string>();
    for (const c of state.cells) {
      if (this._edited.has(c.cell_id)) {
        c.nodes.forEach(n => edited.add(n));
      }
    }
    const out = state.nodes.map(n => ({ ...n }));
    const byName = new Map(out.map(n => [n.name, n]));
    for (const n of out) {
      if (edited.has(n.name) && hasValue(n.status)) {
        n.status = 'stale';
        n.reason = 'its cell was edited since it ran';
      }
    }
    // Nodes come in the kernel's topological order, so one pass propagates downstream.
    for (const n of out) {
      if (!hasValue(n.status)) {
        continue;
      }
      const up = n.deps.find(d => byName.get(d)?.status === 'stale');
      if (up) {
        n.status = 'stale';
        n.reason = `upstream \`${up}\` is stale`;
      }
    }
    return out;
  }

  /** How people know a notebook cell: its execution count "[5]", else null. */
  cellLabel(cellId: string): string | null {
    const cells = this.panel.content.model?.cells;
    if (!cells) {
      return null;
    }
    for (let i = 0; i < cells.length; i++) {
      const m = cells.get(i);
      if (m.id === cellId) {
        const count = (m as unknown as { executionCount?: number | null }).executionCount;
        return typeof count === 'number' ? `[${count}]` : `#${i + 1}`;
      }
    }
    return null;
  }

  /** The kernel's registered body of every `%%hamilton` cell (e.g. after a checkpoint restore). */
  requestSources(): Promise<Map<string, string>> {
    return new Promise((resolve, reject) => {
      this._sourceWaiters.push(resolve);
      if (!this.send({ type: 'cell_sources', protocol: PROTOCOL })) {
        this._sourceWaiters = this._sourceWaiters.filter(w => w !== resolve);
        reject(new Error('hamilton_nb is not connected in this kernel'));
      }
    });
  }

  /** Whether the kernel knows a `%%hamilton` cell with this id. */
  isRegistered(cellId: string): boolean {
    return !!this._state?.cells.some(c => c.cell_id === cellId);
  }

  /** Whether the cell's current source is a `%%hamilton` cell. */
  isHamiltonCell(cellId: string): boolean {
    const cell = this.panel.content.model?.cells;
    if (!cell) {
      return false;
    }
    for (let i = 0; i < cell.length; i++) {
      const m = cell.get(i);
      if (m.id === cellId) {
        return hamiltonBody(m.sharedModel.getSource()) !== null;
      }
    }
    return false;
  }

  /** Send a request to the kernel; returns false when there is no live comm. */
  send(msg: FrontendMessage): boolean {
    const comm = this._comm;
    if (!comm || comm.isDisposed || this._status !== 'connected') {
      return false;
    }
    comm.send({ ...msg } as JSONObject);
    return true;
  }

  /** Ask the kernel for its state again (or say hello if it was not loaded before). */
  refresh(): void {
    if (!this.send({ type: 'request_state', protocol: PROTOCOL, features: [DELTA_FEATURE] })) {
      this._hello();
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._detach();
    window.clearTimeout(this._hashTimer);
    NotebookActions.executed.disconnect(this._onExecuted, this);
    for (const cell of this.panel.content.widgets) {
      cell.removeClass(STALE_CLASS);
    }
    Signal.clearData(this);
  }

  // ---------------------------------------------------------------- kernel / comm
  private _onKernelChanged(): void {
    this._attach(this.panel.sessionContext.session?.kernel ?? null);
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    if (kernel === this._kernel) {
      return;
    }
    this._detach();
    this._kernel = kernel;
    if (!kernel) {
      this._setStatus('no_kernel');
      return;
    }
    kernel.registerCommTarget(COMM_TARGET, this._onKernelComm);
    kernel.statusChanged.connect(this._onKernelStatus, this);
    kernel.connectionStatusChanged.connect(this._onConnectionStatus, this);
    this._setStatus('connecting');
    this._needsHello = true;
    if (kernel.connectionStatus === 'connected' && isAlive(kernel.status)) {
      this._hello();
    }
  }

  private _detach(): void {
    const kernel = this._kernel;
    if (kernel) {
      if (!kernel.isDisposed) {
        kernel.removeCommTarget(COMM_TARGET, this._onKernelComm);
      }
      kernel.statusChanged.disconnect(this._onKernelStatus, this);
      kernel.connectionStatusChanged.disconnect(this._onConnectionStatus, this);
    }
    this._closeComm();
    this._kernel = null;
    this._setState(null);
  }

  private _onKernelStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      // Lab disposes all comms of a restarting kernel; the new process has to be asked again.
      this._comm = null;
      this._kernelComm = null;
      this._helloPending = false;
      this._setState(null);
      this._setStatus('connecting');
      this._needsHello = true;
    } else if (this._needsHello && isAlive(status) && kernel.connectionStatus === 'connected') {
      this._hello();
    }
  }

  private _onConnectionStatus(
    kernel: Kernel.IKernelConnection,
    status: Kernel.ConnectionStatus
  ): void {
    if (status === 'connected' && isAlive(kernel.status)) {
      // After a websocket reconnect some state messages may have been lost.
      this.refresh();
    }
  }

  private _onExecuted(
    _: unknown,
    args: { notebook: unknown; success: boolean }
  ): void {
    // A kernel without the comm target is asked again only after an execution completes (the
    // cell may have been `%load_ext hamilton_nb`): cheap, at most one attempt per executed cell.
    if (args.notebook === this.panel.content && this._status === 'not_loaded') {
      this._hello();
    }
  }

  private _hello(): void {
    const kernel = this._kernel;
    if (!kernel || kernel.isDisposed || this._helloPending) {
      return;
    }
    this._needsHello = false;
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(COMM_TARGET);
    } catch (err) {
      console.warn('hamilton-nb: cannot open a comm', err);
      this._setStatus('not_loaded');
      return;
    }
    keepOnMainShell(comm);
    this._helloPending = true;
    if (this._status !== 'connected') {
      this._setStatus('connecting');
    }
    this._wire(comm);
    const timer = window.setTimeout(() => {
      if (this._comm === comm && this._helloPending) {
        this._helloPending = false;
        this._setStatus('not_loaded');
      }
    }, HELLO_TIMEOUT_MS);
    comm.onClose = () => {
      window.clearTimeout(timer);
      this._onCommClosed(comm);
    };
    try {
      comm.open({ type: 'hello', protocol: PROTOCOL, features: [DELTA_FEATURE] });
    } catch (err) {
      window.clearTimeout(timer);
      this._helloPending = false;
      this._onCommClosed(comm);
    }
  }

  /**
   * Comm opened by the kernel (`%load_ext hamilton_nb`); its open data is a state message.
   *
   * The state is shown at once. Requests go on a comm opened from here (Lab may already have
   * routed the kernel-opened comm to a subshell, see `keepOnMainShell`), but the kernel-opened
   * comm keeps being listened to until that one answers: the `hello` waits in the kernel's queue
   * behind the cells being run (typically the rest of "Run all" right after `%load_ext`), and
   * the states sent meanwhile, the progress of those very cells, arrive on the kernel's comm.
   */
  private _onKernelComm = (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg): void => {
    if (this.isDisposed) {
      return;
    }
    this._helloPending = false;
    this._closeKernelComm();
    this._kernelComm = comm;
    comm.onMsg = m => this._handle(comm, m.content.data);
    comm.onClose = () => {
      if (this._kernelComm === comm) {
        this._kernelComm = null;
      }
    };
    this._handle(comm, msg.content.data);
    this._hello();
  };

  private _closeKernelComm(): void {
    const comm = this._kernelComm;
    this._kernelComm = null;
    if (comm && !comm.isDisposed) {
      comm.onClose = () => undefined;
      comm.onMsg = () => undefined;
      try {
        comm.close();
      } catch {
        // the kernel may be gone already
      }
    }
  }

  /** Make `comm` the current comm, closing the previous one. */
  private _wire(comm: Kernel.IComm): void {
    const previous = this._comm;
    this._comm = comm;
    if (previous && previous !== comm && !previous.isDisposed) {
      previous.onClose = () => undefined;
      try {
        previous.close();
      } catch {
        // the kernel may be gone already
      }
    }
    comm.onMsg = msg => this._handle(comm, msg.content.data);
  }

  private _onCommClosed(comm: Kernel.IComm): void {
    if (this._comm !== comm) {
      return;
    }
    this._comm = null;
    this._helloPending = false;
    this._setState(null);
    this._setStatus(this._kernel ? 'not_loaded' : 'no_kernel');
  }

  private _closeComm(): void {
    this._closeKernelComm();
    const comm = this._comm;
    this._comm = null;
    this._helloPending = false;
    if (comm && !comm.isDisposed) {
      comm.onClose = () => undefined;
      comm.onMsg = () => undefined;
      try {
        comm.close();
      } catch {
        // ignore: the kernel connection may be disposed
      }
    }
  }

  private _handle(comm: Kernel.IComm, data: unknown): void {
    const current = comm === this._comm;
    if ((!current && comm !== this._kernelComm) || typeof data !== 'object' || data === null) {
      return;
    }
    if (current && this._kernelComm && (data as { type?: unknown }).type === 'state') {
      this._closeKernelComm(); // our own comm answers now: one stream of states is enough
    }
    const msg = data as {
      type?: unknown;
      state?: unknown;
      message?: unknown;
      seq?: unknown;
      base?: unknown;
    };
    if (msg.type === 'state') {
      const state = parseState(msg.state);
      if (!state) {
        console.warn('hamilton-nb: malformed state message', data);
        return;
      }
      this._helloPending = false;
      this._wholeStateAsked = false;
      this._seq = typeof msg.seq === 'number' ? msg.seq : null;
      this._setState(state);
      this._setStatus('connected');
    } else if (msg.type === 'state_delta') {
      // What changed since state number `base`. A delta this state has already seen (the same
      // broadcast on the kernel's comm and ours) is dropped; one that does not fit it (a
      // message lost, or a state sent meanwhile as a reply) makes us ask for the whole state.
      const seq = typeof msg.seq === 'number' ? msg.seq : null;
      if (seq === null || (this._seq !== null && seq <= this._seq)) {
        return;
      }
      const next =
        this._state && this._seq !== null && msg.base === this._seq
          ? applyDelta(this._state, data)
          : null;
      if (!next) {
        this._seq = null;
        if (!this._wholeStateAsked) {
          this._wholeStateAsked = true; // (once: the deltas until it comes are dropped)
          this.refresh();
        }
        return;
      }
      this._seq = seq;
      this._setState(next);
      this._setStatus('connected');
    } else if (msg.type === 'error') {
      Notification.error(`Hamilton: ${String(msg.message ?? 'request failed')}`, {
        autoClose: 8000
      });
    } else if (msg.type === 'notice') {
      Notification.info(`Hamilton: ${String(msg.message ?? '')}`, { autoClose: 6000 });
    } else if (msg.type === 'cell_sources') {
      const cells = (data as { cells?: unknown }).cells;
      const sources = new Map<string, string>();
      if (Array.isArray(cells)) {
        for (const c of cells as { cell_id?: unknown; body?: unknown }[]) {
          if (typeof c.cell_id === 'string' && typeof c.body === 'string') {
            sources.set(c.cell_id, c.body);
          }
        }
      }
      const waiters = this._sourceWaiters;
      this._sourceWaiters = [];
      waiters.forEach(w => w(sources));
    }
  }

  // ---------------------------------------------------------------- stale markers
  private _scheduleHashes(): void {
    window.clearTimeout(this._hashTimer);
    this._hashTimer = window.setTimeout(() => void this._updateHashes(), EDIT_DEBOUNCE_MS);
  }

  private async _updateHashes(): Promise<void> {
    const cells = this.panel.content.model?.cells;
    if (!cells || this.isDisposed) {
      return;
    }
    const seen = new Set<string>();
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < cells.length; i++) {
      const model: ICellModel = cells.get(i);
      const id = model.id;
      seen.add(id);
      const source = model.sharedModel.getSource();
      const cached = this._hashes.get(id);
      if (cached && cached.source === source) {
        continue;
      }
      const body = hamiltonBody(source);
      if (body === null) {
        this._hashes.set(id, { source, hash: null });
        continue;
      }
      jobs.push(
        bodyHash(body).then(hash => {
          this._hashes.set(id, { source, hash });
        })
      );
    }
    for (const id of [...this._hashes.keys()]) {
      if (!seen.has(id)) {
        this._hashes.delete(id);
      }
    }
    await Promise.all(jobs);
    if (!this.isDisposed) {
      this._recomputeStale();
    }
  }

  private _recomputeStale(): void {
    const state = this._state;
    const edited = new Set<string>();
    const stale = new Set<string>();
    if (state) {
      const cellOfNode = new Map<string, string>();
      for (const n of state.nodes) {
        if (n.cell_id) {
          cellOfNode.set(n.name, n.cell_id);
        }
      }
      for (const c of state.cells) {
        for (const name of c.nodes) {
          cellOfNode.set(name, c.cell_id);
        }
      }
      // downstream[c] = cells defining a node that depends on a node of cell c
      const downstream = new Map<string, Set<string>>();
      for (const n of state.nodes) {
        const to = cellOfNode.get(n.name);
        if (!to) {
          continue;
        }
        for (const dep of n.deps) {
          const from = cellOfNode.get(dep);
          if (from && from !== to) {
            let set = downstream.get(from);
            if (!set) {
              downstream.set(from, (set = new Set()));
            }
            set.add(to);
          }
        }
      }
      const queue: string[] = [];
      for (const c of state.cells) {
        const local = this._hashes.get(c.cell_id);
        // A registered cell that is no longer in the notebook has no local hash: only the
        // kernel's view counts for it.
        const ownEdit = local !== undefined && local.hash !== c.source_hash;
        if (ownEdit) {
          edited.add(c.cell_id);
        }
        if (ownEdit || c.stale) {
          stale.add(c.cell_id);
          queue.push(c.cell_id);
        }
      }
      while (queue.length) {
        const from = queue.pop()!;
        for (const to of downstream.get(from) ?? []) {
          if (!stale.has(to)) {
            stale.add(to);
            queue.push(to);
          }
        }
      }
    }
    for (const cell of this.panel.content.widgets) {
      cell.toggleClass(STALE_CLASS, stale.has(cell.model.id));
    }
    if (!sameSet(stale, this._stale) || !sameSet(edited, this._edited)) {
      this._stale = stale;
      this._edited = edited;
      this._changed.emit();
    }
  }

  // ---------------------------------------------------------------- bookkeeping
  private _setState(state: IDagState | null): void {
    if (state === null) {
      this._seq = null;
      this._wholeStateAsked = false;
    }
    if (state === null && this._state === null) {
      return;
    }
    this._state = state;
    this._recomputeStale();
    this._changed.emit();
  }

  private _setStatus(status: ConnectionStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._changed.emit();
    }
  }

  private _emitChanged(): void {
    this._changed.emit();
  }

  private _changed = new Signal<this, void>(this);
  private _status: ConnectionStatus = 'no_kernel';
  private _state: IDagState | null = null;
  /** The number of `_state` (a `state_delta` applies to the state it names); null: unknown. */
  private _seq: number | null = null;
  private _wholeStateAsked = false;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _comm: Kernel.IComm | null = null;
  private _kernelComm: Kernel.IComm | null = null;
  private _helloPending = false;
  private _needsHello = false;
  private _hashes = new Map<string, { source: string; hash: string | null }>();
  private _hashTimer = 0;
  private _stale: ReadonlySet<string> = new Set();
  private _edited: ReadonlySet<string> = new Set();
  private _sourceWaiters: ((sources: Map<string, string>) => void)[] = [];
  private _isDisposed = false;
}

/**
 * Send this comm's messages on the kernel's main shell, not on a subshell.
 *
 * JupyterLab >= 4.4 sends comm messages of kernels that support subshells (ipykernel 7) to a
 * per-target subshell by default, i.e. the kernel handles them in another thread, concurrently with
 * a running cell. `run_cell`, `clear_cell` and `restore` change the session and its cache, so they
 * must queue behind cell executions like any other code. Must be set synchronously after
 * `createComm`, before Lab starts the subshell.
 */
function keepOnMainShell(comm: Kernel.IComm): void {
  if ('commsOverSubshells' in comm) {
    comm.commsOverSubshells = 'disabled' as Kernel.IComm['commsOverSubshells'];
  }
}

function isAlive(status: Kernel.Status): boolean {
  return status === 'idle' || status === 'busy';
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) {
    return false;
  }
  for (const x of a) {
    if (!b.has(x)) {
      return false;
    }
  }
  return true;
}
