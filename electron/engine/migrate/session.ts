/**
 * What a migration takes and reports, shared by its two source sides (source.ts for one process,
 * tree-source.ts for a tree; source.ts hands a tree to tree-source.ts, so neither imports the
 * other's shared parts), and the reading of the destination's restore steps.
 */
import type { PreflightAnswer } from './confirm';

export interface MigrateOptions {
  /** Stop after the first round and the destination's pre-flight; nothing is frozen or started. */
  dryRun?: boolean;
  /** Pre-copy rounds at most, the full one included (default 8). */
  maxRounds?: number;
  /** A round this small (pages) is the last one sent while the process runs (default 256, 1 MiB). */
  smallRound?: number;
  onRound?: (r: MigrateRound) => void;
  /**
   * Asked once the destination's pre-flight of round 1 passed, while the process (or tree) runs
   * on: true goes on with the same session (round 1 is not sent again), false ends it as a dry
   * run. The session starts as a dry run (a receiver keeps its token for another try) and becomes
   * a migration only on true (confirm.ts). A destination too old to turn a dry run into a
   * migration ends it as a dry run before asking: the result then says `proceedUnsupported`.
   */
  confirm?: (preflight: PreflightAnswer) => Promise<boolean>;
  /**
   * A tree only (tree-source.ts): false gives its processes new PIDs on the destination
   * (`--no-pid`). By default a tree must get its own PIDs back there (its processes know each
   * other by them: restore/tree.ts), and the destination's pre-flight refuses it when they are taken.
   */
  samePid?: boolean;
  /**
   * The last round's VmFlags guessed from the round before and checked while the round travels
   * (docs/wire-protocol.md, "VmFlags checked after the send"), where the destination allows it:
   * 'auto' (the default) when the smaps walk is still running once the pages are copied,
   * 'always' (tests), or 'never'. On this 2-core machine the destination's build competes with the
   * walk for the cores, so the gain is smaller than the walk and noisy (docs/benchmarks.md).
   */
  guessVmFlags?: 'auto' | 'always' | 'never';
}

export interface MigrateRound {
  round: number;
  /** The source store's checkpoint sent in this round. */
  checkpointId: number;
  kind: 'full' | 'incremental' | 'final';
  pages: number;
  /** Of pages, those that crossed the wire (a negotiated round skips what the destination holds). */
  pagesSent: number;
  /** Bytes on the wire for this round. */
  bytes: number;
  sendMs: number;
  /** The destination wrote this round into its prepared process (else it is restored from scratch at the end). */
  absorbed: boolean;
}


export interface MigrateResult {
  pid: number;
  dryRun: boolean;
  /** Asked to confirm, but the destination cannot turn a dry run into a migration: a new session has to send round 1 again. */
  proceedUnsupported?: boolean;
  rounds: MigrateRound[];
  bytesSent: number;
  /** The destination's pre-flight of the first round. */
  preflight: PreflightAnswer;
  /** Not set for a dry run. */
  destination?: {
    pid: number; checkpointId: number; restoreMs: number;
    /** Whether the destination had the process built from the earlier rounds (only the last one applied in the downtime). */
    prepared: boolean;
    /** The destination's restore steps inside the downtime (what it reported; malformed entries dropped). */
    steps: { step: string; ms: number }[];
    /** How long building it from round 1 took (outside the downtime); or why it was not built. */
    prepareMs?: number; unprepared?: string;
    warning?: string;
  };
  /** Freeze of the source to the destination's process running (not set for a dry run). */
  downtimeMs?: number;
  /** Of the downtime: the final checkpoint's freeze to its commit done (the process stays frozen through the commit). */
  frozenMs?: number;
  /**
   * The downtime step by step, from the freeze to `restored` (not set for a dry run): the source's
   * capture phases, the export, then the destination's time as seen from here (transfer, its
   * validation and restore steps: destination.steps).
   */
  cutover?: { step: string; ms: number }[];
  /** A migrated tree (tree-source.ts): every process of it, root first, with its PID on the destination (null for a dry run). */
  tree?: {
    members: { pid: number; comm: string; destinationPid: number | null }[];
    /**
     * Not set for a dry run: pages the last round read while the tree was held frozen (with
     * pre-copy per member, only what each wrote since its live read: capture/tree-live.ts), and
     * how many members had pre-copy.
     */
    frozenPages?: number; preCopied?: number;
  };
  /**
   * How the last round's VmFlags were had (not set for a dry run): 'read' (the smaps walk waited
   * for before the commit) or 'guessed' (from the round before, sent at once, checked against
   * the walk before the destination ran the process).
   */
  vmFlags?: 'read' | 'guessed';
  /** A guess that was wrong (the mappings whose VmFlags differed): that round was thrown away, the process resumed and the last round taken again. */
  retracted?: string[];
}

/** The destination's step timings, taken only as far as they have the expected shape (it is another machine's word). */
export function restoreSteps(x: unknown): { step: string; ms: number }[] {
  if (!Array.isArray(x)) return [];
  return x.slice(0, 64).flatMap((e: unknown) => {
    const o = e as { step?: unknown; ms?: unknown } | null;
    return o && typeof o.step === 'string' && typeof o.ms === 'number' && Number.isFinite(o.ms) ? [{ step: o.step.slice(0, 80), ms: o.ms }] : [];
  });
}
