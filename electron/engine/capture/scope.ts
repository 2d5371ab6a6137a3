/**
 * Which checkpoint a request gets when it does not say `tree`: the process and its descendants when
 * it has children, as `criu dump -t PID` does. A parent restored without its children cannot come
 * back exact: its wait() finds nothing, its pipes to them lead nowhere. A process without children
 * gets the single-process checkpoint and its low-downtime snapshots. Shared by the API, the CLI
 * and schedules so that the three agree.
 */
import { hasChildProcesses } from '../proc/children';
import { checkpoint, type CheckpointOptions, type CheckpointResult } from './index';
import { checkpointTree, type TreeCheckpointResult } from './tree';

export type ScopedResult = { tree: false; result: CheckpointResult } | { tree: true; result: TreeCheckpointResult };

export function wantsTree(pid: number, tree: boolean | undefined): boolean {
  return tree ?? hasChildProcesses(pid);
}

export function checkpointScoped(store: Parameters<typeof checkpoint>[0], pid: number, opts: CheckpointOptions & { tree?: boolean }): ScopedResult {
  const { tree, ...rest } = opts;
  return wantsTree(pid, tree) ? { tree: true, result: checkpointTree(store, pid, rest) } : { tree: false, result: checkpoint(store, pid, rest) };
}
