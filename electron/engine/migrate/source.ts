/**
 * Live migration, the source side: a full checkpoint sent while the process runs, incrementals
 * sent while the dirty set keeps shrinking, then the process frozen (checkpoint mode 'hold'), the
 * last delta sent and restored on the destination; only once the destination says the process
 * runs there is the source killed. Any failure before that resumes the source untouched and tells
 * the destination to discard what it received. Each round is an ordinary checkpoint of this store
 * sent as a stream continuing the destination's copy of its parent (store/streams.ts `continues`).
 * Owns the session's source end: the pipe is opened and closed by the caller.
 */
import { warm as warmSmapsReader } from '../capture/smaps-ahead';
import * as fs from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { Store } from '../store/api';
import { checkpoint, type CheckpointResult, type HeldProcess } from '../capture';
import { childProcesses } from '../proc';
import { listThreads, readBasics } from '../tracer';
import { offerStream } from './negotiate';
import { CHUNK, type FrameReader, type FrameWriter } from './wire';
import { migrateTree } from './tree-source';
import { goOnAfterPreflight, helloDryRun, type PreflightAnswer } from './confirm';

export type { PreflightAnswer } from './confirm';

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
  tree?: { members: { pid: number; comm: string; destinationPid: number | null }[] };
}

/** The last round travels in memory when its stream is no larger (else through spool files, as every round). */
const MEMORY_ROUND = 256 * 2 ** 20;

export async function migrate(store: Store, pid: number, rd: FrameReader, wr: FrameWriter, opts: MigrateOptions = {}): Promise<MigrateResult> {
  // The last round's smaps read runs on a worker thread (capture/smaps-ahead.ts): started now, it is up by then.
  warmSmapsReader();
  if (!fs.existsSync(`/proc/${pid}`)) throw new StasisError('PROCESS_GONE', `There is no process ${pid}; nothing was sent.`);
  // A process with children moves with them, as a tree (a parent moved alone could not wait for them).
  if (childProcesses(pid, listThreads(pid)).length) return migrateTree(store, pid, rd, wr, opts);
  const rounds: MigrateRound[] = [];
  let bytesSent = 0;
  let held: HeldProcess | null = null;
  let remote: number | null = null;
  let lastSent: number | null = null;
  let negotiate = false;
  let footerLast = false;
  let checksum: 'hashes' | 'bytes' = 'bytes';
  let memoryRound = false;
  let deferred: { settle(): void; discard(): void } | null = null;
  const settle = (): void => {
    const d = deferred;
    deferred = null;
    d?.settle();
  };
  /** Sends checkpoint id as one stream (continuing the destination's copy of its parent when it has it); returns the destination's id. */
  const send = async (c: CheckpointResult, kind: MigrateRound['kind']): Promise<number> => {
    const parent = store.get(c.id)?.parentId ?? null;
    const continues = remote !== null && parent !== null && parent === lastSent ? remote : undefined;
    // Another checkpoint of the process taken meanwhile (a schedule) breaks the chain the destination holds: send it whole.
    const how = continues === undefined && parent !== null ? 'flattened' : 'one';
    const exportOpts = { checksum, ...(continues === undefined ? {} : { continues }) };
    const t0 = performance.now();
    const wire0 = wr.bytes;
    let ack: { ids: number[]; absorbed?: unknown };
    let pages: number;
    let pagesSent: number;
    // Negotiated by page hash where the destination can (the pages it holds anywhere stay
    // home), except the last round: its pages are all new there, and the exchange would add a
    // round trip to the downtime.
    if (negotiate && kind !== 'final') {
      const x = store.openExport(c.id, how, exportOpts);
      pages = x.pages;
      const o = await offerStream(rd, wr, x, { final: false }, footerLast);
      ack = o.ack as typeof ack;
      pagesSent = o.pagesSent;
    } else {
        // Straight from the segments into the wire: no stream file (the destination imports it as it arrives).
      const x = store.openExport(c.id, how, exportOpts);
      pages = pagesSent = x.pages;
      await wr.send({ t: 'stream', bytes: x.bytes, final: kind === 'final' });
      // One buffer for every chunk: each is on the link before the next is read into it.
      for (const chunk of x.chunks(true)) await wr.dataReusable(chunk);
      ack = await rd.expect<{ ids: number[]; absorbed?: boolean }>('imported');
    }
    const bytes = wr.bytes - wire0;
    const round: MigrateRound = { round: rounds.length + 1, checkpointId: c.id, kind, pages, pagesSent, bytes, sendMs: +(performance.now() - t0).toFixed(1), absorbed: ack.absorbed === true };
    rounds.push(round);
    bytesSent += bytes;
    opts.onRound?.(round);
    lastSent = c.id;
    remote = ack.ids[ack.ids.length - 1]!;
    return remote;
  };
  try {
    await wr.magic();
    await wr.send({ t: 'hello', proto: 1, pid, startTime: readBasics(pid)?.startTime ?? null, dryRun: helloDryRun(opts) });
    const hi = await rd.expect<{ negotiate?: unknown; memoryRound?: unknown; footerLast?: unknown; hashChecksum?: unknown; proceed?: unknown }>('hello');
    negotiate = hi.negotiate === true;
    footerLast = hi.footerLast === true;
    // Streams of versions 3 and 4 (checksum over the page hashes) to a destination that reads them.
    checksum = hi.hashChecksum === true ? 'hashes' : 'bytes';
    // A destination that says so takes the last round in memory (`stream {restore: true}`); an older one gets it as every round.
    memoryRound = hi.memoryRound === true;
    // Pre-copy for any number of threads where the kernel allows: the default keeps several
    // threads frozen for the whole read, which would stop a multi-threaded process every round.
    let snapshot: 'precopy' | undefined = 'precopy';
    const first = (() => {
      try {
        return checkpoint(store, pid, { full: true, label: 'migration: full', snapshot });
      } catch (e) {
        if (!(e instanceof StasisError && e.code === 'UNSUPPORTED')) throw e;
        snapshot = undefined;
        return checkpoint(store, pid, { full: true, label: 'migration: full' });
      }
    })();
    await wr.send({ t: 'preflight', id: await send(first, 'full') });
    const preflight = await rd.expect<PreflightAnswer>('preflight');
    const { go, proceedUnsupported } = await goOnAfterPreflight(rd, wr, preflight, opts, hi);
    if (!go) {
      if (!preflight.ok) {
        throw new StasisError('PREFLIGHT_FAILED', `The destination cannot restore process ${pid}: ${preflight.items.filter((i) => !i.ok).map((i) => `${i.label}: ${i.reason}${i.fix ? ` (${i.fix})` : ''}`).join(' ')} Nothing was stopped: the process runs on here.`, { items: preflight.items });
      }
      return { pid, dryRun: true, rounds, bytesSent, preflight: { ok: preflight.ok, items: preflight.items }, ...(proceedUnsupported ? { proceedUnsupported } : {}) };
    }
    // The destination builds the process from round 1 while this one runs on; it then absorbs
    // every later round, so the downtime holds only the last one.
    await wr.send({ t: 'prepare', id: remote! });
    const prep = await rd.expect<{ ok: boolean; reason?: string; ms?: number }>('prepared');
    const max = Math.max(1, opts.maxRounds ?? 8);
    const small = opts.smallRound ?? 256;
    let prev = rounds[0]!.pages;
    while (rounds.length < max && prev > small) {
      const c = checkpoint(store, pid, { label: `migration: round ${rounds.length + 1}`, ...(snapshot ? { snapshot } : {}) });
      await send(c, 'incremental');
      const now = rounds[rounds.length - 1]!.pages;
      // The dirty set stopped shrinking: more rounds would not shorten the freeze.
      if (now >= prev) break;
      prev = now;
    }
    const marks: { phase: string; at: number }[] = [];
    const last = checkpoint(store, pid, {
      mode: 'hold', label: 'migration: final', ...(snapshot ? { snapshot } : {}),
      onPhase: (p) => {
        marks.push({ phase: p, at: performance.now() });
        // The last round's commit skips its fsync and stays invisible to others until the
        // destination runs the process (settled below); a crash meanwhile leaves the store as the
        // earlier rounds left it. Only for a round that can go in memory (a continuation).
        if (p === 'commit' && memoryRound && remote !== null && lastSent !== null) deferred = store.deferDurability();
      },
    });
    held = last.held ?? null;
    const committedAt = performance.now();
    // From the freeze that holds it now: frozenMs stops before the commit, which it is frozen through too.
    const frozenAt = held?.frozenAt ?? performance.now() - last.frozenMs;
    const frozenMs = +(committedAt - frozenAt).toFixed(1);
    const parent = store.get(last.id)?.parentId ?? null;
    let id: number;
    let restored: { pid: number; durationMs: number; warning?: string; prepared?: boolean; steps?: unknown };
    let exportedAt = committedAt;
    let inMemory = false;
    // The last round in memory, restored at once there and stored (durably) only after `restored`;
    // one that does not continue what the destination holds, or too large, goes as every round.
    const r = memoryRound && remote !== null && parent !== null && parent === lastSent ? exportInMemory(store, last.id, remote) : null;
    // Through spool files as every round: durable first, as before.
    if (!r) settle();
    if (r) {
      exportedAt = performance.now();
      inMemory = true;
      const t0 = performance.now();
      const wire0 = wr.bytes;
      await wr.send({ t: 'stream', bytes: r.bytes, final: true, restore: true });
      for (let pos = 0; pos < r.bytes; pos += CHUNK) await wr.data(r.data.subarray(pos, Math.min(pos + CHUNK, r.bytes)));
      restored = await rd.expect<typeof restored>('restored');
      const bytes = wr.bytes - wire0;
      const round: MigrateRound = { round: rounds.length + 1, checkpointId: last.id, kind: 'final', pages: r.pages, pagesSent: r.pages, bytes, sendMs: +(performance.now() - t0).toFixed(1), absorbed: restored.prepared === true };
      rounds.push(round);
      bytesSent += bytes;
      opts.onRound?.(round);
      id = -1; // the destination's id of it comes with `bye`, once it is stored there
    } else {
      id = await send(last, 'final');
      await wr.send({ t: 'restore', id });
      restored = await rd.expect<typeof restored>('restored');
    }
    const restoredAt = performance.now();
    const downtimeMs = +(restoredAt - frozenAt).toFixed(1);
    const cutover = cutoverSteps(frozenAt, marks, committedAt, inMemory ? exportedAt : null, restoredAt);
    held?.kill();
    held = null;
    // Outside the downtime: the source's copy of the last round, durable now (the destination's is being stored meanwhile).
    let unsettled: string | undefined;
    try { settle(); } catch (e) { unsettled = `This store could not keep its copy of the last round (${(e as Error).message}).`; }
    // From here the process exists only there: a lost confirmation is a warning, not a failure to undo.
    let confirmed = true;
    let byeWarning: string | undefined;
    try {
      await wr.send({ t: 'done' });
      const bye = await rd.expect<{ checkpointId?: unknown; warning?: unknown }>('bye');
      if (id === -1 && typeof bye.checkpointId === 'number') id = bye.checkpointId;
      if (typeof bye.warning === 'string' && bye.warning !== restored.warning) byeWarning = bye.warning.slice(0, 2000);
    } catch {
      confirmed = false;
    }
    const there = id === -1 ? 'its last checkpoint there (if it was stored)' : `its checkpoint #${id} there`;
    const lost = confirmed ? undefined : `The destination did not confirm that it keeps the process (the connection broke after the restore): if it is not running there (pid ${restored.pid}), restore ${there}, or #${last.id} here.`;
    const warning = [restored.warning, byeWarning, lost, unsettled].filter(Boolean).join(' ');
    return {
      pid, dryRun: false, rounds, bytesSent, preflight: { ok: preflight.ok, items: preflight.items },
      destination: {
        pid: restored.pid, checkpointId: id, restoreMs: restored.durationMs, prepared: restored.prepared === true, steps: restoreSteps(restored.steps),
        ...(prep.ok ? { prepareMs: prep.ms ?? 0 } : { unprepared: prep.reason ?? 'no reason given' }), ...(warning ? { warning } : {}),
      },
      downtimeMs, frozenMs, cutover,
    };
  } catch (e) {
    const wasHeld = held !== null;
    held?.resume();
    // A held process: its last round stays a valid checkpoint here (it runs on from it); if that
    // cannot be made durable it goes. A capture that failed after its commit began keeps nothing.
    if (wasHeld) { try { settle(); } catch { /* settle discarded it */ } }
    await wr.send({ t: 'abort', reason: (e as Error).message }).catch(() => undefined);
    if (e instanceof StasisError && e.code === 'PROCESS_GONE') {
      throw new StasisError('PROCESS_GONE', `${e.message} The migration stopped after ${rounds.length} round(s); the destination discards what it received and starts nothing.`);
    }
    const msg = (e as Error).message;
    const code = e instanceof StasisError ? e.code : 'INTERNAL';
    if (e instanceof StasisError && e.code === 'PREFLIGHT_FAILED') throw e;
    throw new StasisError(code, `Migration of process ${pid} failed: ${msg}${/\.$/.test(msg) ? '' : '.'} ${wasHeld ? 'The process was frozen for the last round and now runs on here untouched' : 'The process runs on here untouched'}; the destination discards what it received.`);
  } finally {
    // A failure inside the capture itself (after its commit phase began) leaves nothing deferred behind.
    (deferred as { discard(): void } | null)?.discard();
  }
}

/** The last round as an in-memory continuation of the destination's #remote; null when it is larger than MEMORY_ROUND. */
function exportInMemory(store: Store, id: number, remote: number): { bytes: number; pages: number; data: Buffer } | null {
  const pages = store.records(id).reduce((n, x) => n + (x.kind === 'data' ? x.pages : 0), 0);
  if (pages * 4128 > MEMORY_ROUND) return null;
  return store.exportStreamBytes(id, 'one', { continues: remote, maxBytes: MEMORY_ROUND });
}

/**
 * The downtime's steps as seen from the source: capture phases of the held checkpoint (marks),
 * its commit, the in-memory export (exportedAt, null when the round went through spool files),
 * and the rest up to `restored` (transfer and the destination's work).
 */
function cutoverSteps(frozenAt: number, marks: { phase: string; at: number }[], committedAt: number, exportedAt: number | null, restoredAt: number): { step: string; ms: number }[] {
  const at = (p: string): number | undefined => marks.find((m) => m.phase === p)?.at;
  const points: [string, number | undefined][] = [
    ['freeze, registers and kernel state', at('frozen')],
    ['frozen copy of what changed during the live read', at('details')],
    ['mappings\' files and vdso', at('pages')],
    ['pages into the checkpoint (frozen copy, shared and unreadable mappings), then the rest of the smaps walk (VmFlags)', at('commit')],
    ['commit (index transaction; its fsync deferred when the round goes in memory)', committedAt],
    ...(exportedAt !== null ? [['export in memory', exportedAt] as [string, number]] : []),
    [exportedAt !== null ? 'send, validate, absorb and resume there' : 'export, send, import and restore there', restoredAt],
  ];
  const out: { step: string; ms: number }[] = [];
  let prev = frozenAt;
  for (const [step, t] of points) {
    if (t === undefined || t < prev) continue;
    out.push({ step, ms: +(t - prev).toFixed(2) });
    prev = t;
  }
  return out;
}

/** The destination's step timings, taken only as far as they have the expected shape (it is another machine's word). */
export function restoreSteps(x: unknown): { step: string; ms: number }[] {
  if (!Array.isArray(x)) return [];
  return x.slice(0, 64).flatMap((e: unknown) => {
    const o = e as { step?: unknown; ms?: unknown } | null;
    return o && typeof o.step === 'string' && typeof o.ms === 'number' && Number.isFinite(o.ms) ? [{ step: o.step.slice(0, 80), ms: o.ms }] : [];
  });
}
