/**
 * hamilton-nb: JupyterLab side panel with the live Hamilton DAG of the current notebook, stale-cell
 * markers and commands talking to the `hamilton_nb` kernel extension (docs/protocol.md).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { NotebookConnection } from './connection';
import { renderRun } from './mime';
import { HamiltonPanel } from './panel';
import { IDagNode, PROTOCOL, RUN_MIME_TYPE } from './protocol';

namespace CommandIDs {
  export const runCell = 'hamilton-nb:run-cell';
  export const clearCell = 'hamilton-nb:clear-cell';
  export const restore = 'hamilton-nb:restore';
  export const showPanel = 'hamilton-nb:show-panel';
  export const runStale = 'hamilton-nb:run-stale';
  export const writeBack = 'hamilton-nb:write-kernel-code';
}

const CATEGORY = 'Hamilton';

interface ITarget {
  connection: NotebookConnection;
  cell: Cell;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'hamilton-nb:plugin',
  description: 'Live Hamilton DAG side panel, stale-cell markers and Hamilton commands.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const connections = new Map<NotebookPanel, NotebookConnection>();

    const goToCell = (nbPanel: NotebookPanel, node: IDagNode): void => {
      const notebook = nbPanel.content;
      const index = notebook.widgets.findIndex(c => c.model.id === node.cell_id);
      if (index < 0) {
        Notification.warning(`Hamilton: the cell defining \`${node.name}\` is not in this notebook.`, {
          autoClose: 5000
        });
        return;
      }
      app.shell.activateById(nbPanel.id);
      notebook.deselectAll();
      notebook.activeCellIndex = index;
      notebook.mode = 'command';
      void notebook.scrollToCell(notebook.widgets[index], 'center');
    };

    const panel = new HamiltonPanel(goToCell);
    app.shell.add(panel, 'right', { rank: 650 });
    restorer?.add(panel, 'hamilton-nb-panel');

    const follow = (): void => {
      const current = tracker.currentWidget;
      panel.connection = current ? (connections.get(current) ?? null) : null;
    };

    tracker.widgetAdded.connect((_, nbPanel) => {
      watchMissingWidgets(nbPanel);
      const connection = new NotebookConnection(nbPanel);
      connections.set(nbPanel, connection);
      nbPanel.disposed.connect(() => {
        connections.delete(nbPanel);
        connection.dispose();
        follow();
      });
      follow();
    });
    tracker.currentChanged.connect(follow);
    follow();

    /** Cell the command applies to: the right-clicked cell, else the active cell. */
    const target = (args: { fromContextMenu?: unknown }): ITarget | null => {
      if (args.fromContextMenu) {
        const hit = app.contextMenuHitTest(node => node.classList.contains('jp-Cell'));
        if (hit) {
          for (const [nbPanel, connection] of connections) {
            const cell = nbPanel.content.widgets.find(c => c.node === hit);
            if (cell) {
              return { connection, cell };
            }
          }
        }
      }
      const nbPanel = tracker.currentWidget;
      const cell = nbPanel?.content.activeCell;
      const connection = nbPanel ? connections.get(nbPanel) : undefined;
      return cell && connection ? { connection, cell } : null;
    };
    const current = (): NotebookConnection | null => {
      const nbPanel = tracker.currentWidget;
      return nbPanel ? (connections.get(nbPanel) ?? null) : null;
    };
    const connected = (c: NotebookConnection | null | undefined): boolean =>
      c?.status === 'connected';

    app.commands.addCommand(CommandIDs.runCell, {
      label: "Hamilton: Run this cell's nodes",
      caption:
        'Recompute what is needed for the nodes of this %%hamilton cell (runs the cell if it was edited)',
      isEnabled: args => {
        const t = target(args);
        return !!t && connected(t.connection) && t.connection.isHamiltonCell(t.cell.model.id);
      },
      isVisible: args => !args.fromContextMenu || isHamiltonTarget(target(args)),
      execute: async args => {
        const t = target(args);
        if (!t || !connected(t.connection)) {
          return;
        }
        const id = t.cell.model.id;
        if (t.connection.isRegisteredUnchanged(id)) {
          t.connection.send({ type: 'run_cell', protocol: PROTOCOL, cell_id: id });
          return;
        }
        // Edited (or never run) cell: the kernel only knows its old code, so execute the cell
        // itself, which registers the new code and runs it.
        const { panel: nbPanel } = t.connection;
        const notebook = nbPanel.content;
        const index = notebook.widgets.indexOf(t.cell);
        if (index < 0) {
          return;
        }
        notebook.deselectAll();
        notebook.activeCellIndex = index;
        await NotebookActions.run(notebook, nbPanel.sessionContext);
      }
    });

    app.commands.addCommand(CommandIDs.clearCell, {
      label: "Hamilton: Clear cache of this cell's nodes",
      caption: 'Drop the cached results of the nodes defined by this %%hamilton cell',
      isEnabled: args => {
        const t = target(args);
        return !!t && connected(t.connection) && t.connection.isRegistered(t.cell.model.id);
      },
      isVisible: args => !args.fromContextMenu || isHamiltonTarget(target(args)),
      execute: args => {
        const t = target(args);
        if (t && connected(t.connection)) {
          t.connection.send({ type: 'clear_cell', protocol: PROTOCOL, cell_id: t.cell.model.id });
        }
      }
    });

    app.commands.addCommand(CommandIDs.restore, {
      label: 'Hamilton: Restore last state',
      caption: 'Restore the DAG and its results from the cache (%hamilton restore)',
      isEnabled: args => connected(args.fromContextMenu ? target(args)?.connection : current()),
      isVisible: args => !args.fromContextMenu || isHamiltonTarget(target(args)),
      execute: args => {
        const c = args.fromContextMenu ? target(args)?.connection : current();
        if (c && connected(c)) {
          c.send({ type: 'restore', protocol: PROTOCOL });
        }
      }
    });

    app.commands.addCommand(CommandIDs.runStale, {
      label: 'Hamilton: Run stale nodes',
      caption: 'Recompute every stale node and bind the new values (%hamilton run --stale)',
      isEnabled: () => connected(current()),
      execute: () => {
        panel.connection = current();
        panel.runStale();
      }
    });

    app.commands.addCommand(CommandIDs.writeBack, {
      label: "Hamilton: Write the kernel's code into edited cells",
      caption:
        'After a checkpoint restore: put the restored code into the cells whose text differs (undoable)',
      isEnabled: () => connected(current()) && (current()?.editedCells.size ?? 0) > 0,
      execute: () => {
        panel.connection = current();
        return panel.writeKernelCode();
      }
    });

    app.commands.addCommand(CommandIDs.showPanel, {
      label: 'Hamilton: Show DAG panel',
      execute: () => app.shell.activateById(panel.id)
    });

    // A group of its own right after Lab's "Clear Cell Output" (rank 12); Lumino drops the
    // separator when the items are hidden (cells that are not %%hamilton cells).
    const commands = [CommandIDs.runCell, CommandIDs.clearCell, CommandIDs.restore];
    const selector = '.jp-Notebook .jp-CodeCell';
    app.contextMenu.addItem({ type: 'separator', selector, rank: 13 });
    commands.forEach((command, i) => {
      app.contextMenu.addItem({
        command,
        args: { fromContextMenu: true },
        selector,
        rank: 13.1 + i / 10
      });
    });
    if (palette) {
      for (const command of [
        ...commands,
        CommandIDs.runStale,
        CommandIDs.writeBack,
        CommandIDs.showPanel
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    // Re-evaluate enabled state of the commands when the connection state changes.
    const notify = (): void => {
      commands.forEach(c => app.commands.notifyCommandChanged(c));
    };
    tracker.activeCellChanged.connect(notify);
    tracker.currentChanged.connect(notify);
    tracker.widgetAdded.connect((_, nbPanel) => {
      connections.get(nbPanel)?.changed.connect(notify);
    });
  }
};

/** What jupyterlab_widgets shows for a widget output whose model is gone (no kernel, no saved
 * widget state). */
const MISSING_WIDGET = 'Error displaying widget';

/**
 * A saved notebook reopened without its kernel has no model for the panel's last widget output:
 * where that output also carries the run's DAG state (the panel writes it there when the run
 * ends), draw that snapshot instead of the error.
 */
function watchMissingWidgets(nbPanel: NotebookPanel): void {
  let frame = 0;
  const fix = (): void => {
    frame = 0;
    for (const cell of nbPanel.content.widgets) {
      if (cell.model.type !== 'code') {
        continue;
      }
      const area = (cell as CodeCell).outputArea;
      area.widgets.forEach((child, i) => {
        const out = child.node.querySelector<HTMLElement>('.jp-OutputArea-output');
        if (!out || out.dataset.hnbSnapshot || !out.textContent?.includes(MISSING_WIDGET)) {
          return;
        }
        const data = area.model.get(i)?.data[RUN_MIME_TYPE];
        if (!data) {
          return;
        }
        const holder = document.createElement('div');
        holder.className = 'hnb-run-output hnb-snapshot';
        renderRun(holder, data, true);
        const note = document.createElement('p');
        note.className = 'hnb-hint';
        note.textContent =
          'Snapshot of this run, saved with the notebook (the live panel needs the kernel).';
        holder.prepend(note);
        out.replaceChildren(holder);
        out.dataset.hnbSnapshot = '1';
      });
    }
  };
  const observer = new MutationObserver(records => {
    const inOutput = records.some(r => {
      const el = r.target instanceof Element ? r.target : r.target.parentElement;
      return !!el?.closest('.jp-OutputArea');
    });
    if (inOutput && !frame) {
      frame = requestAnimationFrame(fix);
    }
  });
  observer.observe(nbPanel.content.node, { subtree: true, childList: true });
  nbPanel.disposed.connect(() => observer.disconnect());
}

function isHamiltonTarget(t: ITarget | null): boolean {
  return !!t && t.connection.isHamiltonCell(t.cell.model.id);
}

export default plugin;
