/**
 * Live migration, the destination side (`stasis receive` when the sender opens a session): each
 * round's stream is spooled to a private file and imported only once complete (store/streams.ts
 * validates it whole), the pre-flight answered, the last round restored. The restored process is
 * kept only once the source confirms it has killed its own ('done'); an abort, a dropped
 * connection or silence kills it again, so the process never runs in two places. What was
 * imported is discarded on an abort before the restore, and kept (restorable) after it.
 * The store is reached only through deps (the same API calls as every client).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostname } from 'node:os';
import { StasisError, toErrorData } from '../../../shared/errors';
import type { FrameReader, FrameWriter } from './wire';
import type { Store } from '../store/api';
import { acceptStream } from './negotiate';
import { STREAM_CHUNK, streamDelta, type StreamDelta } from '../store/streams';
import type { StreamImport } from '../store/stream-import';
import { decodeState, type ProcessState } from '../state/process-state';
import { WarmBuffer } from './warm-buffer';
import { startWindowTrace, windowMark } from './window-trace';

interface RestoredProcess {
  pid: number; durationMs: number; warning?: string; steps?: readonly { step: string; ms: number }[];
  /** A tree checkpoint: every process restored, root first (pid is the root's). */
  members?: readonly { pid: number; originalPid: number }[];
}

/** How the source asks the tree's PIDs to be given (its hello's samePid: false = `migrate --no-pid`). */
export interface RestoreHow { samePid?: boolean }

/** A restore built up to its memory while the source still runs (restore/index.ts PreparedRestore). */
export interface PreparedProcess {
  readonly checkpointId: number;
  absorb(next: number): boolean;
  /** Catches up with a round validated in memory, not imported yet (restore/index.ts PreparedRestore.absorbDelta). */
  absorbDelta?(state: ProcessState, changes: StreamDelta): boolean;
  finish(): RestoredProcess;
  /** finish() up to the process running, which waits for run() (restore/index.ts PreparedRestore.finishHeld); without it the wait comes before finish(). */
  finishHeld?(): { run(): RestoredProcess };
  /** Writes the restored process's timeline entry: called once the source knows it runs (not downtime); asId names a round absorbed with absorbDelta once imported. */
  record(asId?: number): unknown;
  abandon(): void;
  /** A prepared tree: whether its members are exactly these checkpoints (a member-by-member round absorbed whole). */
  holds?(ids: readonly number[]): boolean;
}

export interface DestinationDeps {
  importFile(file: string): Promise<{ ids: number[] }>;
  /**
   * Imports a round as its bytes arrive (store Store.beginImport): no spool file, one pass. Without
   * it each round is spooled to a file and imported with importFile once complete.
   */
  beginImport?(total: number, avoidFiles?: ReadonlySet<number>): StreamImport;
  preflight(id: number, how?: RestoreHow): Promise<{ ok: boolean; items: unknown[] }>;
  restore(id: number, how?: RestoreHow): Promise<RestoredProcess>;
  /**
   * Groups checkpoints received in the session (a tree's members, each sent alone as its process's
   * continuation; root first) into one tree checkpoint, returning its id (tree-group.ts). Without
   * it a tree's later rounds come whole (flattened, offered by page hash).
   */
  groupTree?(ids: number[]): Promise<number>;
  /**
   * Builds the process from checkpoint id up to its memory, kept stopped (the downtime then holds
   * only the last round); the whole tree, each member up to its memory, when id is of a tree
   * checkpoint (restore/tree.ts prepareTreeRestore; `how` as for its restore).
   */
  prepare?(id: number, how?: RestoreHow): Promise<PreparedProcess>;
  remove(ids: number[]): Promise<void>;
  /** A private directory (the store's) for spool files. */
  spoolDir: string;
  /**
   * This store, when the session may negotiate rounds by page hash (negotiate.ts: only the pages
   * it holds nowhere travel); it offers to when it holds a copy of the process. Without it the
   * source sends each round whole.
   */
  store?: Store;
  /** How long the restored process waits for the source's confirmation (default 30 s). */
  confirmMs?: number;
}

export interface DestinationResult {
  /** The source's pid, from its hello. */
  sourcePid: number;
  dryRun: boolean;
  /** Checkpoints of this store the session imported (kept unless discarded). */
  checkpointIds: number[];
  discarded: boolean;
  /** The migrated process running here (prepared: built from the earlier rounds, only the last one applied at the end). */
  restored?: {
    pid: number; checkpointId: number; durationMs: number; prepared: boolean; warning?: string;
    /** A migrated tree: every process of it here, root first (killed together if the session fails). */
    members?: { pid: number; originalPid: number }[];
  };
  /** Why the session ended without a migrated process. */
  failure?: string;
}

const MAX_STREAM = 2 ** 44;
/** Bytes of one page in a stream (its hash, then the page). */
const STREAM_ENTRY = 32 + 4096;
/** The last round travels in memory (stream `restore: true`): no larger than this. */
export const MAX_MEMORY_ROUND = 512 * 2 ** 20;

function killQuietly(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

/** The restored process, or every process of a restored tree (children first, so no parent runs on to see one die). */
function killRestored(r: NonNullable<DestinationResult['restored']>): void {
  for (const m of r.members ? [...r.members].reverse() : [{ pid: r.pid }]) killQuietly(m.pid);
}

/** Serves one session whose magic rd has already read (FrameReader.magic). */
export async function serveMigration(rd: FrameReader, wr: FrameWriter, deps: DestinationDeps): Promise<DestinationResult> {
  startWindowTrace('destination');
  const hello = await rd.expect<{ proto?: unknown; pid?: unknown; startTime?: unknown; dryRun?: unknown; samePid?: unknown }>('hello');
  if (hello.proto !== 1) {
    await wr.send({ t: 'error', message: `this Stasis speaks migration protocol 1, the sender ${String(hello.proto)}: update both to the same version` });
    throw new StasisError('INVALID_INPUT', `The sender speaks migration protocol ${String(hello.proto)}, this Stasis protocol 1.`);
  }
  const result: DestinationResult = { sourcePid: Number(hello.pid), dryRun: hello.dryRun === true, checkpointIds: [], discarded: false };
  // Negotiating pays only where this store holds a copy of the process (an earlier send or
  // --follow): otherwise every page is new here, and the exchange costs throughput for nothing.
  // memoryRound: this end takes the last round in memory (`stream {restore: true}`, restoreLastRound);
  // confirmRun: it also holds such a round's process stopped until `run` (`stream {confirm: true}`).
  // trees: this end restores a migrated tree and kills all of it if the session fails (an older one
  // would kill only its root); offers: it takes any round as an offer by page hash (a tree's later
  // rounds when they cannot travel as continuations); memberRounds: it groups a tree's members
  // sent one by one as continuations (`group`), so a tree's later rounds carry only what changed.
  // treePrepare: it builds a tree from a tree checkpoint (`prepare`), absorbs each member's round as
  // it arrives and the tree they are grouped into (`group`), and restores that one prepared.
  // hashChecksum: it reads streams of versions 3 and 4. proceed: a dry run can turn into the migration after its pre-flight (migrate/confirm.ts).
  await wr.send({ t: 'hello', host: hostname(), negotiate: holdsCopy(deps.store, hello.pid, hello.startTime), memoryRound: true, confirmRun: true, footerLast: true, hashChecksum: true, trees: true, offers: deps.store !== undefined, memberRounds: deps.groupTree !== undefined, treePrepare: deps.prepare !== undefined, proceed: true });
  // Only ever narrows what the restore may do: new PIDs for a tree whose own ones are taken here.
  const how: RestoreHow | undefined = hello.samePid === false ? { samePid: false } : undefined;
  const mine = (id: unknown): number => {
    if (typeof id !== 'number' || !result.checkpointIds.includes(id)) throw new StasisError('INVALID_INPUT', `checkpoint ${String(id)} was not received in this session`);
    return id;
  };
  const discard = async (): Promise<void> => {
    if (!result.checkpointIds.length || result.restored) return;
    await deps.remove([...result.checkpointIds].reverse()).catch(() => undefined);
    result.discarded = true;
  };
  // In a box: the closures below assign it, which flow analysis does not follow.
  const box: { prepared: PreparedProcess | null } = { prepared: null };
  // Memory for the last round (its bytes as received, and its pages side by side for the absorb),
  // faulted in while the source still runs (warm-buffer.ts): only for a prepared process.
  const warm = { stream: new WarmBuffer(), pages: new WarmBuffer() };
  const warmFor = (bytes: number): void => {
    // Only a single process takes its last round in memory (a tree's comes member by member).
    if (!box.prepared?.absorbDelta) return;
    warm.stream.reserve(bytes);
    warm.pages.reserve(bytes);
  };
  const unprepare = (): void => { box.prepared?.abandon(); box.prepared = null; };
  const prepare = async (id: number): Promise<{ ok: boolean; reason?: string }> => {
    unprepare();
    if (!deps.prepare) return { ok: false, reason: 'this destination does not prepare restores' };
    try {
      box.prepared = await deps.prepare(id, how);
      return { ok: true };
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
  };
  const fail = async (why: string): Promise<DestinationResult> => {
    unprepare();
    if (result.restored) killRestored(result.restored);
    await discard();
    result.failure = why;
    return result;
  };
  for (;;) {
    let f;
    try {
      f = await withTimeout(rd.next(), result.restored ? deps.confirmMs ?? 30_000 : null);
    } catch (e) {
      return fail((e as Error).message);
    }
    if (f === 'timeout') return fail(`the source did not confirm within ${(deps.confirmMs ?? 30_000) / 1000} s that it stopped its copy; the process restored here was killed (checkpoint #${result.restored!.checkpointId} is kept)`);
    if (!f) return fail(result.restored ? `the connection closed before the source confirmed; the process restored here was killed so it does not run twice (checkpoint #${result.restored.checkpointId} is kept)` : 'the connection closed before the migration finished');
    if (f.type !== 'json') return fail('data arrived outside a stream');
    const m = f.msg;
    try {
      if (m.t === 'stream' && m.restore === true) {
        if (result.dryRun) throw new StasisError('INVALID_INPUT', 'a dry run restores nothing');
        const bytes = m.bytes;
        if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes <= 0 || bytes > MAX_MEMORY_ROUND) throw new StasisError('INVALID_INPUT', `a last round of ${String(bytes)} bytes was announced (at most ${MAX_MEMORY_ROUND} travel in memory)`);
        windowMark('last round announced');
        const r0 = performance.now();
        const data = await receiveInMemory(rd, bytes, warm.stream.take(bytes));
        const restored = await restoreLastRound(data, box, deps, mine, wr, result.checkpointIds, +(performance.now() - r0).toFixed(2), m.confirm === true ? rd : null, warm.pages);
        // The source found its round inexact (and sends it again) or gave up.
        if ('retracted' in restored) continue;
        if ('aborted' in restored) return fail(`the source stopped the migration: ${restored.aborted}`);
        result.restored = { pid: restored.pid, checkpointId: restored.checkpointId, durationMs: restored.durationMs, prepared: restored.prepared, ...(restored.warning ? { warning: restored.warning } : {}) };
        continue;
      }
      if (m.t === 'stream' || m.t === 'offer') {
        const r0 = performance.now();
        let ids: number[];
        if (m.t === 'offer') {
          if (!deps.store) throw new StasisError('INVALID_INPUT', 'this destination did not offer to negotiate pages');
          ids = (await acceptStream(rd, wr, m, { store: deps.store, importFile: deps.importFile, ...(deps.beginImport ? { beginImport: deps.beginImport } : {}) })).ids;
        } else {
          const bytes = m.bytes;
          if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes <= 0 || bytes > MAX_STREAM) throw new StasisError('INVALID_INPUT', `a stream of ${String(bytes)} bytes was announced`);
          ids = await receiveStream(rd, bytes, deps);
        }
        result.checkpointIds.push(...ids);
        // A prepared process catches up with the round; if it cannot (the layout changed), it is
        // rebuilt from this round while the source still runs, but not from the last round: the
        // restore from scratch is then no slower.
        let absorbed = false;
        const a0 = performance.now();
        if (box.prepared) {
          const last = ids[ids.length - 1]!;
          try { absorbed = box.prepared.absorb(last); } catch { absorbed = false; }
          if (!absorbed) {
            unprepare();
            // One member of a tree's round is no process to build: the tree is prepared again only from a whole tree.
            if (m.final !== true && m.member === undefined) await prepare(last);
          }
        }
        // Where a tree's last round spends the downtime here (its members are imported, then absorbed).
        await wr.send({ t: 'imported', ids, absorbed, importMs: +(a0 - r0).toFixed(2), absorbMs: +(performance.now() - a0).toFixed(2) });
        // The last round is about the size of this one: room for twice that (its pages, as announced).
        const roundBytes = m.t === 'offer' ? Number(m.pages) * STREAM_ENTRY : Number(m.bytes);
        if (m.final !== true && Number.isFinite(roundBytes)) warmFor(2 * roundBytes + 2 ** 20);
      } else if (m.t === 'group') {
        if (result.dryRun) throw new StasisError('INVALID_INPUT', 'a dry run groups nothing');
        if (!deps.groupTree) throw new StasisError('INVALID_INPUT', 'this destination does not group trees');
        if (!Array.isArray(m.ids) || m.ids.length < 1 || m.ids.length > 4096) throw new StasisError('INVALID_INPUT', 'a tree to group needs its members\' ids');
        const g0 = performance.now();
        const id = await deps.groupTree(m.ids.map(mine));
        // Discarded with the rest if the session fails before the restore.
        result.checkpointIds.push(id);
        // A prepared tree that absorbed every member's round becomes this tree (nothing to write: the
        // group has no pages of its own); else it is dropped and the tree restored from scratch.
        let absorbed = false;
        if (box.prepared) {
          try { absorbed = box.prepared.absorb(id); } catch { absorbed = false; }
          if (!absorbed) unprepare();
        }
        await wr.send({ t: 'grouped', id, absorbed, ms: +(performance.now() - g0).toFixed(2) });
      } else if (m.t === 'prepare') {
        if (result.dryRun) throw new StasisError('INVALID_INPUT', 'a dry run prepares nothing');
        const t0 = performance.now();
        const p = await prepare(mine(m.id));
        await wr.send({ t: 'prepared', ...p, ms: +(performance.now() - t0).toFixed(1) });
        warmFor(0);
      } else if (m.t === 'proceed') {
        // A dry run the user confirmed after its pre-flight: the same session goes on as a migration.
        if (!result.dryRun) throw new StasisError('INVALID_INPUT', 'only a dry run can proceed');
        if (!result.checkpointIds.length) throw new StasisError('INVALID_INPUT', 'nothing was received to proceed from');
        result.dryRun = false;
        await wr.send({ t: 'proceeding' });
      } else if (m.t === 'preflight') {
        const p = await deps.preflight(mine(m.id), how);
        await wr.send({ t: 'preflight', ok: p.ok, items: p.items });
      } else if (m.t === 'restore' && m.members !== undefined) {
        if (result.dryRun) throw new StasisError('INVALID_INPUT', 'a dry run restores nothing');
        if (!deps.groupTree) throw new StasisError('INVALID_INPUT', 'this destination does not group trees');
        if (!Array.isArray(m.members) || m.members.length < 1 || m.members.length > 4096) throw new StasisError('INVALID_INPUT', 'a tree to restore needs its members\' ids');
        const ids = m.members.map(mine);
        await restoreMembers(ids, box, { ...deps, groupTree: deps.groupTree }, how, wr, result, unprepare);
      } else if (m.t === 'restore') {
        if (result.dryRun) throw new StasisError('INVALID_INPUT', 'a dry run restores nothing');
        const id = mine(m.id);
        const ready = box.prepared?.checkpointId === id ? box.prepared : null;
        if (!ready) unprepare();
        box.prepared = null;
        const r = ready ? ready.finish() : await deps.restore(id, how);
        const members = r.members?.map((x) => ({ pid: x.pid, originalPid: x.originalPid }));
        result.restored = { pid: r.pid, checkpointId: id, durationMs: r.durationMs, prepared: ready !== null, ...(members ? { members } : {}) };
        await wr.send({ t: 'restored', pid: r.pid, durationMs: r.durationMs, prepared: ready !== null, steps: r.steps ?? [], ...(r.warning ? { warning: r.warning } : {}), ...(members ? { members } : {}) });
        ready?.record();
      } else if (m.t === 'done') {
        if (!result.restored) return fail('the source ended the session before anything was restored');
        // The source learns that the process stays here: without this it cannot tell a kept process from a killed one.
        await wr.send({ t: 'bye', checkpointId: result.restored.checkpointId, ...(result.restored.warning ? { warning: result.restored.warning } : {}) }).catch(() => undefined);
        unprepare();
        return result;
      } else if (m.t === 'run' || m.t === 'retract') {
        // The word on a held last round that failed here (the source hears `error`): nothing waits for it.
      } else if (m.t === 'abort') {
        return fail(`the source stopped the migration: ${typeof m.reason === 'string' ? m.reason.slice(0, 2000) : 'no reason given'}`);
      } else {
        throw new StasisError('INVALID_INPUT', `unknown message "${m.t.slice(0, 40)}"`);
      }
    } catch (e) {
      const d = toErrorData(e);
      await wr.send({ t: 'error', code: d.code, message: d.message }).catch(() => undefined);
      // A stream that did not import leaves the session usable (the source decides); anything else ends it.
      if (m.t !== 'stream' && m.t !== 'preflight') return fail(d.message);
    }
  }
}

/**
 * A tree's last round sent member by member (`restore {members}`, root first): a prepared tree that
 * absorbed exactly these members runs at once, and only then are they grouped into one tree
 * checkpoint (an index commit over every member's pages: outside the downtime) and the restored
 * tree recorded; otherwise they are grouped first and the tree restored from scratch. What fails
 * once `restored` is sent is a warning (the tree runs), never a reason to kill it.
 */
async function restoreMembers(ids: number[], box: { prepared: PreparedProcess | null }, deps: DestinationDeps & { groupTree(ids: number[]): Promise<number> }, how: RestoreHow | undefined, wr: FrameWriter, result: DestinationResult, unprepare: () => void): Promise<void> {
  const ready = box.prepared?.holds?.(ids) ? box.prepared : null;
  if (!ready) unprepare();
  box.prepared = null;
  let id: number | null = null;
  let r: RestoredProcess;
  if (ready) r = ready.finish();
  else {
    id = await deps.groupTree(ids);
    // Discarded with the rest if the restore or the session fails.
    result.checkpointIds.push(id);
    r = await deps.restore(id, how);
  }
  const members = r.members?.map((x) => ({ pid: x.pid, originalPid: x.originalPid }));
  const restored: NonNullable<DestinationResult['restored']> = { pid: r.pid, checkpointId: id ?? ids[0]!, durationMs: r.durationMs, prepared: ready !== null, ...(r.warning ? { warning: r.warning } : {}), ...(members ? { members } : {}) };
  // Set before `restored` goes: from here a failed session kills the whole tree.
  result.restored = restored;
  await wr.send({ t: 'restored', pid: r.pid, durationMs: r.durationMs, prepared: ready !== null, steps: r.steps ?? [], ...(r.warning ? { warning: r.warning } : {}), ...(members ? { members } : {}) });
  if (!ready) return;
  let grouped: number | undefined;
  try {
    grouped = await deps.groupTree(ids);
    restored.checkpointId = grouped;
    result.checkpointIds.push(grouped);
  } catch (e) {
    restored.warning = [restored.warning, `The tree runs here, but its last round's checkpoints #${ids.join(', #')} could not be grouped into one tree checkpoint (${(e as Error).message}). #${ids[0]} is the root's checkpoint alone: restoring it brings back the root process without its children.`].filter(Boolean).join(' ');
  }
  // The timeline entry follows the tree checkpoint, as a tree restored from scratch does.
  ready.record(grouped);
}

/**
 * Reads exactly `bytes` of data frames into memory (the last round: at most MAX_MEMORY_ROUND): into
 * warm when given (exactly `bytes` long), where a frame that arrived in pieces is joined in place.
 */
async function receiveInMemory(rd: FrameReader, bytes: number, warm: Buffer | null): Promise<Buffer> {
  const data = warm ?? Buffer.allocUnsafe(bytes);
  for (let got = 0; got < bytes;) {
    const f = await rd.next(data.subarray(got));
    if (!f || f.type !== 'data') throw new StasisError('INVALID_INPUT', `the last round broke off after ${got} of ${bytes} bytes; nothing of it was restored`);
    if (got + f.data.length > bytes) throw new StasisError('INVALID_INPUT', `the last round is longer than the ${bytes} bytes announced; nothing of it was restored`);
    if (f.data.buffer !== data.buffer || f.data.byteOffset !== data.byteOffset + got) f.data.copy(data, got);
    got += f.data.length;
  }
  return data;
}

/**
 * The last round (in memory, the source frozen meanwhile): validated with every check of an
 * import, written into the prepared process, which then runs, and `restored` is sent; only then
 * is the round imported durably (a spool file and deps.importFile, as every round) and the
 * process's timeline entry written. Nothing of it is in the store before `restored`: a crash
 * until the import's commit leaves the store as the earlier rounds left it. A round the prepared
 * process cannot absorb (no prepared process, its layout changed) is imported first and restored
 * from scratch, as before. Throws before `restored` only (the source then resumes its process).
 *
 * held (the round came with `confirm: true`): the source sent it before it knew that its VmFlags
 * are exact. Everything that does not let the process run is done meanwhile; the process runs,
 * and anything of the round is stored, only after the source's `run`. `retract` (the round was
 * not exact: the source sends another) kills what was built and stores nothing; so does `abort`.
 */
async function restoreLastRound(data: Buffer, box: { prepared: PreparedProcess | null }, deps: DestinationDeps, mine: (id: unknown) => number, wr: FrameWriter, imported: number[], receiveMs: number, held: FrameReader | null, warmPages: WarmBuffer): Promise<{ pid: number; checkpointId: number; durationMs: number; prepared: boolean; warning?: string } | { retracted: true } | { aborted: string }> {
  windowMark('received');
  const t0 = performance.now();
  const delta = streamDelta('last round', data, warmPages.takeAll() ?? undefined);
  const base = mine(delta.continues);
  const validateMs = +(performance.now() - t0).toFixed(2);
  windowMark('validated');
  const ready = box.prepared?.checkpointId === base && box.prepared.absorbDelta ? box.prepared : null;
  box.prepared = null;
  let absorbed = false;
  const a0 = performance.now();
  try {
    absorbed = ready !== null && ready.absorbDelta!(decodeState(delta.state), delta);
  } finally {
    if (!absorbed) ready?.abandon();
  }
  // Of the downtime, what happened here before the restore's own steps (those start at the absorb's memory write).
  const before = [{ step: 'receive last round', ms: receiveMs }, { step: 'validate last round', ms: validateMs }];
  const waited: { step: string; ms: number }[] = [];
  /** The source's word on a held round: null to go on, else what to return. */
  const verdict = async (): Promise<{ retracted: true } | { aborted: string } | null> => {
    if (!held) return null;
    const w0 = performance.now();
    const f = await held.next();
    waited.push({ step: 'waited for the source\'s run', ms: +(performance.now() - w0).toFixed(2) });
    if (f?.type === 'json' && f.msg.t === 'run') return null;
    if (f?.type === 'json' && f.msg.t === 'retract') return { retracted: true };
    if (f?.type === 'json' && f.msg.t === 'abort') return { aborted: typeof f.msg.reason === 'string' ? f.msg.reason.slice(0, 2000) : 'no reason given' };
    throw new StasisError('INVALID_INPUT', f ? `"${f.type === 'json' ? f.msg.t.slice(0, 40) : 'data'}" arrived where the source's run was expected` : 'the connection closed before the source said whether to run the process');
  };
  if (!absorbed) {
    // Nothing of a held round is stored before the source confirmed it.
    const v = await verdict();
    if (v) return v;
    // The round imported first (inside the downtime, as before this path existed), then a restore from scratch.
    const ids = await importRound(data, deps);
    // Discarded with the rest if the restore or the session fails.
    imported.push(...ids);
    const id = ids[ids.length - 1]!;
    const r = await deps.restore(id);
    await wr.send({ t: 'restored', pid: r.pid, durationMs: r.durationMs, prepared: false, steps: [...before, ...waited, ...(r.steps ?? [])], ...(r.warning ? { warning: r.warning } : {}) });
    return { pid: r.pid, checkpointId: id, durationMs: r.durationMs, prepared: false, ...(r.warning ? { warning: r.warning } : {}) };
  }
  let r: RestoredProcess;
  windowMark('absorbed');
  if (held && ready!.finishHeld) {
    const h = ready!.finishHeld();
    windowMark('built');
    let v: Awaited<ReturnType<typeof verdict>>;
    try {
      v = await verdict();
    } catch (e) {
      ready!.abandon();
      throw e;
    }
    if (v) { ready!.abandon(); return v; }
    windowMark('run arrived');
    r = h.run();
  } else {
    const v = await verdict();
    if (v) { ready!.abandon(); return v; }
    r = ready!.finish();
  }
  windowMark('running');
  const here = performance.now() - a0;
  // What the restore's steps do not cover: the state decoded, the plan built and checked.
  const other = here - (r.steps ?? []).reduce((n, x) => n + x.ms, 0) - waited.reduce((n, x) => n + x.ms, 0);
  const steps = [...before, { step: 'state, plan and pre-flight of the last round', ms: +Math.max(0, other).toFixed(2) }, ...(r.steps ?? []), ...waited];
  const durationMs = +(receiveMs + validateMs + here).toFixed(2);
  await wr.send({ t: 'restored', pid: r.pid, durationMs, prepared: true, steps, ...(r.warning ? { warning: r.warning } : {}) });
  // From here the process runs: what fails is said, nothing is undone (the source holds its own copy of the round).
  let ids: number[] = [];
  let warning = r.warning;
  try {
    ids = await importRound(data, deps);
    imported.push(...ids);
  } catch (e) {
    warning = [warning, `The process runs here, but its last checkpoint could not be stored (${(e as Error).message}); the source store keeps it.`].filter(Boolean).join(' ');
  }
  const id = ids[ids.length - 1];
  if (id !== undefined) ready!.record(id);
  return { pid: r.pid, checkpointId: id ?? base, durationMs, prepared: true, ...(warning ? { warning } : {}) };
}

/** Imports a round held in memory (at once when the store imports as bytes arrive, else through a private spool file, as every round). */
async function importRound(data: Buffer, deps: DestinationDeps): Promise<number[]> {
  if (deps.beginImport) {
    const imp = deps.beginImport(data.length);
    try {
      imp.push(data);
      return imp.finish().ids;
    } finally {
      imp.abort();
    }
  }
  const dir = fs.mkdtempSync(path.join(deps.spoolDir, '.receive-'));
  try {
    const file = path.join(dir, 'stream');
    fs.writeFileSync(file, data, { mode: 0o600, flag: 'wx' });
    return (await deps.importFile(file)).ids;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A full disk said in the words a user acts on; null for any other failure. */
function diskFull(e: unknown, dir: string): StasisError | null {
  const code = (e as NodeJS.ErrnoException).code;
  const full = code === 'ENOSPC' || code === 'EDQUOT' || /ENOSPC|EDQUOT|No space left/.test((e as Error).message ?? '');
  return full ? new StasisError('INVALID_INPUT', `the destination's disk is full (${(e as Error).message}); nothing of this round was imported. Free space in ${dir} and migrate again`) : null;
}

/**
 * Imports exactly `bytes` of data frames as they arrive (deps.beginImport): each frame is checked
 * and written into the new segment before the next is read, and the round becomes visible only
 * once the whole stream checked out. Whatever fails on the way, the rest of the round is still
 * read, so the session stays in step and the source hears why.
 */
async function importAsItArrives(rd: FrameReader, bytes: number, deps: DestinationDeps & { beginImport(total: number): StreamImport }): Promise<number[]> {
  let imp: StreamImport | null = null;
  let openError: unknown = null;
  try {
    imp = deps.beginImport(bytes);
  } catch (e) {
    openError = e;
  }
  try {
    // The importer is done with each frame when push returns: one buffer joins them all (a sender's data frames are at most STREAM_CHUNK).
    const scratch = Buffer.allocUnsafe(STREAM_CHUNK);
    for (let got = 0; got < bytes;) {
      const f = await rd.next(scratch);
      if (!f || f.type !== 'data') throw new StasisError('INVALID_INPUT', `the stream broke off after ${got} of ${bytes} bytes; nothing of it was imported`);
      if (got + f.data.length > bytes) throw new StasisError('INVALID_INPUT', `the stream is longer than the ${bytes} bytes announced; nothing of it was imported`);
      imp?.push(f.data);
      got += f.data.length;
    }
    if (!imp) throw diskFull(openError, deps.spoolDir) ?? openError;
    try {
      return imp.finish().ids;
    } catch (e) {
      throw diskFull(e, deps.spoolDir) ?? e;
    }
  } finally {
    imp?.abort();
  }
}

/**
 * Spools exactly `bytes` of data frames into a private file, then imports it; the file is removed
 * on every path. Whatever fails while spooling (no space, no directory), the rest of the stream is
 * still read, so the session stays in step and the source hears why.
 */
async function receiveStream(rd: FrameReader, bytes: number, deps: DestinationDeps): Promise<number[]> {
  if (deps.beginImport) return importAsItArrives(rd, bytes, { ...deps, beginImport: deps.beginImport });
  let dir: string | null = null;
  let fd: number | null = null;
  let spoolError: Error | null = null;
  try {
    try {
      dir = fs.mkdtempSync(path.join(deps.spoolDir, '.receive-'));
      fd = fs.openSync(path.join(dir, 'stream'), 'wx', 0o600);
    } catch (e) {
      spoolError = e as Error;
    }
    for (let got = 0; got < bytes;) {
      const f = await rd.next();
      if (!f || f.type !== 'data') throw new StasisError('INVALID_INPUT', `the stream broke off after ${got} of ${bytes} bytes; nothing of it was imported`);
      if (got + f.data.length > bytes) throw new StasisError('INVALID_INPUT', `the stream is longer than the ${bytes} bytes announced; nothing of it was imported`);
      if (!spoolError && fd !== null) {
        try { fs.writeSync(fd, f.data, 0, f.data.length, got); } catch (e) { spoolError = e as Error; }
      }
      got += f.data.length;
    }
    if (spoolError || fd === null) {
      const err = spoolError ?? new Error('no spool file');
      const code = (err as NodeJS.ErrnoException).code;
      throw new StasisError('INVALID_INPUT', code === 'ENOSPC' || code === 'EDQUOT'
        ? `the destination's disk is full (${err.message}); nothing of this round was imported. Free space in ${deps.spoolDir} and migrate again`
        : `the destination cannot spool the stream (${err.message}); nothing of this round was imported`);
    }
    fs.closeSync(fd);
    fd = null;
    return (await deps.importFile(path.join(dir!, 'stream'))).ids;
  } finally {
    if (fd !== null) fs.closeSync(fd);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number | null): Promise<T | 'timeout'> {
  if (ms === null) return p;
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether store holds a checkpoint of the source's process (same pid and start time: an import keeps both). */
function holdsCopy(store: Store | undefined, pid: unknown, startTime: unknown): boolean {
  if (!store || typeof pid !== 'number' || typeof startTime !== 'string') return false;
  return store.listTargets().some((t) => t.pid === pid && t.startTime === startTime && store.list({ targetId: t.id }).length > 0);
}
