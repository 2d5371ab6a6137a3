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
import { offerStream, sendStream } from './negotiate';
import { CHUNK, type FrameReader, type FrameWriter } from './wire';
import { migrateTree } from './tree-source';
import { WarmBuffer } from './warm-buffer';
import { startWindowTrace, windowMark } from './window-trace';
import { goOnAfterPreflight, helloDryRun, type PreflightAnswer } from './confirm';
import { restoreSteps, type MigrateOptions, type MigrateResult, type MigrateRound } from './session';

export type { PreflightAnswer } from './confirm';
export type { MigrateOptions, MigrateResult, MigrateRound } from './session';

type Restored = { pid: number; durationMs: number; warning?: string; prepared?: boolean; steps?: unknown };

/** One attempt at the last round (migrate's finalRound): done, or retracted (retract: the VmFlags that differed; nothing else set). */
interface FinalRound {
  retract?: string[];
  last: CheckpointResult;
  /** The destination's id of the round, -1 until its `bye` names it. */
  id: number;
  frozenAt: number;
  frozenMs: number;
  restored: Restored;
  restoredAt: number;
  cutover: { step: string; ms: number }[];
  /** The round travelled with guessed VmFlags, confirmed before the destination ran it. */
  guessed: boolean;
}

/** The last round travels in memory when its stream is no larger (else through spool files, as every round). */
const MEMORY_ROUND = 256 * 2 ** 20;
/** Bytes of one page in a stream (its hash, then the page). */
const STREAM_ENTRY = 32 + 4096;

export async function migrate(store: Store, pid: number, rd: FrameReader, wr: FrameWriter, opts: MigrateOptions = {}): Promise<MigrateResult> {
  if (!fs.existsSync(`/proc/${pid}`)) throw new StasisError('PROCESS_GONE', `There is no process ${pid}; nothing was sent.`);
  // A process with children moves with them, as a tree (a parent moved alone could not wait for them).
  if (childProcesses(pid, listThreads(pid)).length) return migrateTree(store, pid, rd, wr, opts);
  // The last round's smaps read runs on a worker thread (capture/smaps-ahead.ts): started now, it is up by then.
  warmSmapsReader();
  startWindowTrace('source');
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
  let snapshot: 'precopy' | undefined = 'precopy';
  /** Where the last round is exported in memory, faulted in while the process runs (warm-buffer.ts). */
  const warm = new WarmBuffer();
  /** The last round's guessed VmFlags, until they are checked against the exact read. */
  let guessed: { confirm(): string[] } | null = null;
  const confirmGuess = (): string[] => {
    const g = guessed;
    guessed = null;
    return g ? g.confirm() : [];
  };
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
    // The full capture's deferred dedup rows (0.3 s for 1 GiB) would go in at the send's first
    // await and stall the link: they wait for the destination's turn (its pre-flight and build of
    // the process). Not for later rounds: rows still pending when the next capture looks up would
    // be inserted inside it, and for the last round that is while the process is frozen.
    const release = kind === 'full' ? store.holdIdleWork() : () => undefined;
    try {
      if (negotiate && kind !== 'final') {
        const x = store.openExport(c.id, how, exportOpts);
        pages = x.pages;
        const o = await offerStream(rd, wr, x, { final: false }, footerLast);
        ack = o.ack as typeof ack;
        pagesSent = o.pagesSent;
      } else {
        const x = store.openExport(c.id, how, exportOpts);
        pages = pagesSent = x.pages;
        ack = await sendStream<{ ids: number[]; absorbed?: boolean }>(rd, wr, x, { final: kind === 'final' });
      }
    } finally {
      release();
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
  /**
   * Takes the last round (held) and has the destination run it; guess: commit it with VmFlags
   * guessed from its parent (vmflags-guess.ts) and send it at once, the destination building the
   * process meanwhile and running it only on `run`, which follows once the exact flags (still
   * read while frozen) match. When they do not, the commit is thrown away, the destination told
   * to `retract`, the process resumed: `retract` says what differed and the caller takes it again.
   */
  const finalRound = async (guess: boolean): Promise<FinalRound> => {
    const marks: { phase: string; at: number }[] = [];
    windowMark('final round');
    const last = checkpoint(store, pid, {
      mode: 'hold', label: 'migration: final', ...(snapshot ? { snapshot } : {}),
      ...(guess && memoryRound && remote !== null && lastSent !== null && (opts.guessVmFlags ?? 'auto') !== 'never' ? { guessVmFlags: opts.guessVmFlags === 'always' ? 'always' as const : 'if-waiting' as const } : {}),
      onPhase: (p) => {
        marks.push({ phase: p, at: performance.now() });
        windowMark(p);
        // The last round's commit skips its fsync and stays invisible to others until the
        // destination runs the process (settled below); a crash meanwhile leaves the store as the
        // earlier rounds left it. Only for a round that can go in memory (a continuation).
        if (p === 'commit' && memoryRound && remote !== null && lastSent !== null) deferred = store.deferDurability();
      },
    });
    held = last.held ?? null;
    guessed = last.guessedVmFlags ?? null;
    const committedAt = performance.now();
    windowMark('committed');
    // From the freeze that holds it now: frozenMs stops before the commit, which it is frozen through too.
    const frozenAt = held?.frozenAt ?? performance.now() - last.frozenMs;
    const frozenMs = +(committedAt - frozenAt).toFixed(1);
    windowMark('freeze began', frozenAt);
    const parent = store.get(last.id)?.parentId ?? null;
    const retract = async (differ: string[], tell: boolean): Promise<FinalRound> => {
      const d = deferred;
      deferred = null;
      d?.discard();
      held!.resume();
      held = null;
      if (tell) await wr.send({ t: 'retract', reason: `VmFlags changed since the round before: ${differ.slice(0, 3).join('; ')}` });
      return { retract: differ } as FinalRound;
    };
    let id: number;
    let restored: Restored;
    let viaGuess = false;
    const points: [string, number][] = [];
    // The last round in memory, restored at once there and stored (durably) only after `restored`;
    // one that does not continue what the destination holds, or too large, goes as every round.
    const r = memoryRound && remote !== null && parent !== null && parent === lastSent ? exportInMemory(store, last.id, remote, checksum, warm) : null;
    if (!r) {
      // Through spool files as every round: exact and durable first, as before.
      const differ = confirmGuess();
      if (differ.length) return retract(differ, false);
      settle();
      id = await send(last, 'final');
      await wr.send({ t: 'restore', id });
      restored = await rd.expect<Restored>('restored');
      points.push(['export, send, import and restore there', performance.now()]);
    } else {
      points.push(['export in memory', performance.now()]);
      const t0 = performance.now();
      const wire0 = wr.bytes;
      const confirm = guessed !== null;
      await wr.send({ t: 'stream', bytes: r.bytes, final: true, restore: true, ...(confirm ? { confirm: true } : {}) });
      for (let pos = 0; pos < r.bytes; pos += CHUNK) await wr.data(r.data.subarray(pos, Math.min(pos + CHUNK, r.bytes)));
      windowMark('sent');
      if (confirm) {
        points.push(['send the last round', performance.now()]);
        const differ = confirmGuess();
        windowMark('confirmed');
        points.push(['the rest of the smaps walk, its VmFlags checked (the destination builds the process meanwhile)', performance.now()]);
        if (differ.length) return retract(differ, true);
        await wr.send({ t: 'run' });
        viaGuess = true;
      }
      restored = await rd.expect<Restored>('restored');
      windowMark('restored');
      points.push([confirm ? 'then there: the rest of its restore and the process run' : 'send, validate, absorb and resume there', performance.now()]);
      const bytes = wr.bytes - wire0;
      const round: MigrateRound = { round: rounds.length + 1, checkpointId: last.id, kind: 'final', pages: r.pages, pagesSent: r.pages, bytes, sendMs: +(performance.now() - t0).toFixed(1), absorbed: restored.prepared === true };
      rounds.push(round);
      bytesSent += bytes;
      opts.onRound?.(round);
      id = -1; // the destination's id of it comes with `bye`, once it is stored there
    }
    const restoredAt = points[points.length - 1]![1];
    return { last, id, frozenAt, frozenMs, restored, restoredAt, cutover: cutoverSteps(frozenAt, marks, committedAt, points), guessed: viaGuess };
  };
  try {
    await wr.magic();
    await wr.send({ t: 'hello', proto: 1, pid, startTime: readBasics(pid)?.startTime ?? null, dryRun: helloDryRun(opts) });
    const hi = await rd.expect<{ negotiate?: unknown; memoryRound?: unknown; confirmRun?: unknown; footerLast?: unknown; hashChecksum?: unknown; proceed?: unknown }>('hello');
    negotiate = hi.negotiate === true;
    footerLast = hi.footerLast === true;
    // Streams of versions 3 and 4 (checksum over the page hashes) to a destination that reads them.
    checksum = hi.hashChecksum === true ? 'hashes' : 'bytes';
    // A destination that says so takes the last round in memory (`stream {restore: true}`); an older one gets it as every round.
    memoryRound = hi.memoryRound === true;
    // A destination that holds the last round's process until `run` lets that round travel before its VmFlags are checked.
    const confirmRun = memoryRound && hi.confirmRun === true;
    // Pre-copy for any number of threads where the kernel allows: the default keeps several
    // threads frozen for the whole read, which would stop a multi-threaded process every round.
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
    // While the destination builds the process: memory for the last round, faulted in now.
    if (memoryRound) warm.reserve(0);
    const prep = await rd.expect<{ ok: boolean; reason?: string; ms?: number }>('prepared');
    const max = Math.max(1, opts.maxRounds ?? 8);
    const small = opts.smallRound ?? 256;
    let prev = rounds[0]!.pages;
    while (rounds.length < max && prev > small) {
      const c = checkpoint(store, pid, { label: `migration: round ${rounds.length + 1}`, ...(snapshot ? { snapshot } : {}) });
      await send(c, 'incremental');
      const now = rounds[rounds.length - 1]!.pages;
      // The last round is about the size of the one before it: room for twice that, its head included.
      if (memoryRound) warm.reserve(2 * now * STREAM_ENTRY + 2 ** 20);
      // The dirty set stopped shrinking: more rounds would not shorten the freeze.
      if (now >= prev) break;
      prev = now;
    }
    // The last round. Its VmFlags may be guessed from the round before (a destination that holds
    // the process until `run`, and a commit kept invisible): it then travels while the smaps walk
    // finishes, and the destination builds the process meanwhile; an inexact guess is retracted and
    // the round taken again with the exact flags (finalRound).
    let attempt: FinalRound;
    let retracted: string[] | undefined;
    for (;;) {
      attempt = await finalRound(retracted === undefined && confirmRun);
      if (!attempt.retract) break;
      retracted = attempt.retract;
    }
    const { last, frozenAt, frozenMs, restored, restoredAt, cutover } = attempt;
    let id = attempt.id;
    const downtimeMs = +(restoredAt - frozenAt).toFixed(1);
    (held as HeldProcess | null)?.kill();
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
      vmFlags: attempt.guessed ? 'guessed' : 'read',
      ...(retracted ? { retracted } : {}),
    };
  } catch (e) {
    // Assigned in finalRound (a closure flow analysis does not follow).
    const h = held as HeldProcess | null;
    const wasHeld = h !== null;
    // Guessed VmFlags are checked before the process runs again: the walk must finish on the
    // frozen process. Inexact (or unreadable) ones make the held round a wrong checkpoint.
    let inexact = false;
    if (wasHeld) { try { inexact = confirmGuess().length > 0; } catch { inexact = true; } }
    h?.resume();
    // A held process: its last round stays a valid checkpoint here (it runs on from it); if that
    // cannot be made durable it goes. A capture that failed after its commit began keeps nothing.
    if (wasHeld) {
      if (inexact) (deferred as { discard(): void } | null)?.discard();
      else { try { settle(); } catch { /* settle discarded it */ } }
      deferred = null;
    }
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

/**
 * The last round as an in-memory continuation of the destination's #remote; null when it is larger
 * than MEMORY_ROUND. checksum 'hashes' (the destination's hello said hashChecksum): stream version 4,
 * whose footer covers the page hashes only, so neither end hashes the pages' bytes with SHA-256
 * inside the downtime (the destination checks each page against its BLAKE3 hash all the same).
 */
function exportInMemory(store: Store, id: number, remote: number, checksum: 'hashes' | 'bytes', warm: WarmBuffer): { bytes: number; pages: number; data: Buffer } | null {
  const pages = store.records(id).reduce((n, x) => n + (x.kind === 'data' ? x.pages : 0), 0);
  if (pages * STREAM_ENTRY > MEMORY_ROUND) return null;
  const into = warm.takeAll();
  return store.exportStreamBytes(id, 'one', { continues: remote, maxBytes: MEMORY_ROUND, checksum, ...(into ? { into } : {}) });
}

/**
 * The downtime's steps as seen from the source: capture phases of the held checkpoint (marks),
 * its commit, then the named points after it up to `restored` (the last one): the export, the
 * send, the wait for the VmFlags, the destination's work.
 */
function cutoverSteps(frozenAt: number, marks: { phase: string; at: number }[], committedAt: number, after: [string, number][]): { step: string; ms: number }[] {
  const at = (p: string): number | undefined => marks.find((m) => m.phase === p)?.at;
  const points: [string, number | undefined][] = [
    ['freeze, registers and kernel state', at('frozen')],
    ['frozen copy of what changed during the live read', at('details')],
    ['mappings\' files and vdso', at('pages')],
    ['pages into the checkpoint (frozen copy, shared and unreadable mappings), then the rest of the smaps walk (VmFlags) unless they were guessed', at('commit')],
    ['commit (index transaction; its fsync deferred when the round goes in memory)', committedAt],
    ...after,
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
