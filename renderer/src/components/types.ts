/**
 * Shapes of the engine data the screens show, as the store/capture/restore/schedule contracts
 * describe them (mirrors of electron/engine/store/api.ts, which the renderer may not import).
 * Types only: nothing here is ever filled in by the UI itself.
 */
/** One row of processes.list (capture). */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  uid: number;
  /** The uid's name (from /etc/passwd via the engine); null/absent when it has none. */
  user?: string | null;
  comm: string;
  cmdline: string[];
  exe: string | null;
  state: string;
  threads: number;
  rssKb: number;
  startTime: string;
  checkpointable: boolean;
  /** Why Stasis cannot checkpoint it (null when it can). */
  reason: string | null;
}

export interface TargetInfo {
  id: number;
  pid: number;
  startTime: string;
  exe: string;
  cmdline: string[];
  name?: string | null;
  createdAt: string;
}

export interface CheckpointStats {
  pagesScanned: number;
  pagesWritten: number;
  pagesChanged: number;
  bytesWritten: number;
  logicalBytes: number;
  frozenMs?: number;
  durationMs?: number;
}

export interface CheckpointInfo {
  id: number;
  targetId: number;
  parentId: number | null;
  createdAt: string;
  label: string | null;
  notes: string | null;
  pinned: boolean;
  mode: 'full' | 'incremental';
  dirtyTracking: string;
  restoredFrom?: number | null;
  stats: CheckpointStats;
}

/** One mapping of a checkpoint's address space, with where its pages changed. */
export interface MappingView {
  start: string;
  end: string;
  perms: string;
  path: string;
  kind: string;
  pages: number;
  /** Pages of this mapping the checkpoint recorded as changed. */
  changedPages: number;
  /** Per bin (equal slices of the mapping): fraction 0..1 of its pages changed in this checkpoint. */
  changed: number[];
  /** Per bin: how many checkpoints of the chain changed pages in it. */
  chain: number[];
}

export interface CheckpointDetail {
  checkpoint: CheckpointInfo;
  target: TargetInfo;
  chainLength: number;
  mappings: MappingView[];
}

export interface DiffMapping {
  start: string;
  end: string;
  path: string;
  changedPages: number;
  addedPages: number;
  removedPages: number;
  bytes: number;
}

export interface DiffResult {
  a: number;
  b: number;
  changedPages: number;
  addedPages: number;
  removedPages: number;
  bytes: number;
  mappings: DiffMapping[];
}

export interface StoreStats {
  checkpoints: number;
  targets: number;
  storeBytes: number;
  logicalBytes: number;
  uniquePages: number;
  dedupRatio: number;
  compressionRatio: number;
}

export interface CaptureResult {
  id: number;
  pid: number;
  mode: 'full' | 'incremental';
  dirtyTracking: string;
  frozenMs: number;
  durationMs: number;
  pagesScanned: number;
  pagesWritten: number;
  bytesWritten: number;
  warnings?: string[];
}

export interface PreflightItem { id: string; label: string; ok: boolean; reason: string; fix: string | null }
export interface PreflightResult { checkpointId: number; ok: boolean; items: PreflightItem[] }
export interface RestoreResult {
  checkpointId: number;
  pid: number;
  samePid: boolean;
  originalPid: number;
  durationMs: number;
  bytesWritten: number;
  log: string;
  steps: { step: string; ms: number }[];
}

export interface ScheduleSummary {
  id: number;
  target: { kind: 'pid'; pid: number; startTime: string } | { kind: 'name'; name: string };
  timing: { kind: 'interval'; everyMs: number } | { kind: 'cron'; expr: string } | { kind: 'manual' };
  state: 'active' | 'paused' | 'ended';
  nextRunAt: string | null;
  lastResult: 'ok' | 'failed' | 'skipped' | null;
}
