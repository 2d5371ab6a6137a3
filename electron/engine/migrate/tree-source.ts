/**
 * Live migration of a process tree, the source side (`stasis migrate PID` of a process with
 * children; source.ts sends a single process). Each round is a tree checkpoint (capture/tree.ts:
 * each member's memory read while the tree runs, then what it wrote since read with every member
 * frozen at once; from round 2 on only what it wrote since its previous round: the userfaultfds
 * are kept between rounds, tracking.ts), sent while the tree runs; the last one is taken with every
 * member held frozen ('hold'), sent and restored on the destination as a tree (built there from
 * round 1 while the tree runs, each later round absorbed member by member: restore/tree.ts
 * prepareTreeRestore; from scratch when a round changed what was built ahead), and only once the destination says the whole tree runs are
 * the members here killed, children first. Any failure before that resumes every member untouched
 * and tells the destination to discard what it received.
 * A later round goes member by member, each as its process's continuation of that member's copy
 * there (only what changed travels; a stream's continuation is one process's), and the
 * destination groups the last round's members into a tree again before the restore
 * (tree-group.ts). A round with a member the destination has no copy of (a new child), or a
 * destination that does not group, sends the whole tree flattened as an offer by page hash
 * (negotiate.ts): only the pages it holds nowhere cross the wire, but every page is read, hashed
 * and rebuilt on both sides.
 * Members are compared round to round: one that exited since round 1 (its pre-flight ran on a tree
 * with it) stops the migration; a new child is simply part of the next round.
 */
import { StasisError } from '../../../shared/errors';
import type { ExportKind, Store } from '../store/api';
import { checkpointTree, type HeldProcess, type TreeCheckpointResult } from '../capture';
import { readBasics } from '../tracer';
import { offerStream, sendStream } from './negotiate';
import { restoreSteps, type MigrateOptions, type MigrateResult, type MigrateRound } from './session';
import { goOnAfterPreflight, helloDryRun, type PreflightAnswer } from './confirm';
import type { FrameReader, FrameWriter } from './wire';

/** What a destination says in its hello about trees (older ones say nothing and are refused). */
interface TreeHello { negotiate?: unknown; footerLast?: unknown; hashChecksum?: unknown; trees?: unknown; offers?: unknown; memberRounds?: unknown; treePrepare?: unknown; proceed?: unknown }

interface Restored { pid: number; durationMs: number; warning?: string; steps?: unknown; members?: unknown; prepared?: unknown }

export async function migrateTree(store: Store, pid: number, rd: FrameReader, wr: FrameWriter, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const rounds: MigrateRound[] = [];
  let bytesSent = 0;
  let held: HeldProcess | null = null;
  let first: TreeCheckpointResult | null = null;
  let negotiate = false;
  let offers = false;
  let checksum: 'hashes' | 'bytes' = 'bytes';
  let footerLast = false;
  let memberRounds = false;
  /** The destination's word on the latest member-by-member round: receiving and importing its members, writing them into the prepared tree. */
  let atDst = { importMs: 0, absorbMs: 0 };
  /** This store's member checkpoints sent so far -> the destination's ids of them. */
  const remoteOf = new Map<number, number>();
  const record = (c: TreeCheckpointResult, kind: MigrateRound['kind'], pages: number, pagesSent: number, bytes: number, t0: number, absorbed = false): void => {
    const round: MigrateRound = { round: rounds.length + 1, checkpointId: c.id, kind, pages, pagesSent, bytes, sendMs: +(performance.now() - t0).toFixed(1), absorbed };
    rounds.push(round);
    bytesSent += bytes;
    opts.onRound?.(round);
  };
  /**
   * Sends each member of c alone, continuing its previous checkpoint there; returns the
   * destination's ids (root first), or null when a member has no copy there to continue.
   */
  const sendMembers = async (c: TreeCheckpointResult, kind: MigrateRound['kind']): Promise<number[] | null> => {
    const bases = c.members.map((m) => remoteOf.get(store.get(m.id)?.parentId ?? 0));
    if (!memberRounds || bases.some((b) => b === undefined)) return null;
    const t0 = performance.now();
    const wire0 = wr.bytes;
    let pages = 0;
    const ids: number[] = [];
    // Every member written into the destination's prepared tree (its word in each `imported`).
    let absorbed = true;
    atDst = { importMs: 0, absorbMs: 0 };
    for (const [i, m] of c.members.entries()) {
      const x = store.openExport(m.id, 'one', { continues: bases[i]!, memberAlone: true, checksum });
      pages += x.pages;
      const got = await sendStream<{ ids: number[]; absorbed?: unknown; importMs?: unknown; absorbMs?: unknown }>(rd, wr, x, { final: kind === 'final', member: i });
      const id = got.ids[0]!;
      absorbed &&= got.absorbed === true;
      atDst.importMs += typeof got.importMs === 'number' && Number.isFinite(got.importMs) ? got.importMs : 0;
      atDst.absorbMs += typeof got.absorbMs === 'number' && Number.isFinite(got.absorbMs) ? got.absorbMs : 0;
      remoteOf.set(m.id, id);
      ids.push(id);
    }
    record(c, kind, pages, pages, wr.bytes - wire0, t0, absorbed);
    return ids;
  };
  /** Sends tree checkpoint c whole; returns the destination's id of its root. */
  const send = async (c: TreeCheckpointResult, kind: MigrateRound['kind']): Promise<number> => {
    // A full tree goes as it is; a later one as one full per member (the destination holds most of its pages).
    const how: ExportKind = c.mode === 'full' ? 'one' : 'flattened';
    const x = store.openExport(c.id, how, { checksum });
    const t0 = performance.now();
    const wire0 = wr.bytes;
    let ids: number[];
    let pagesSent = x.pages;
    if (kind === 'full' ? negotiate : offers) {
      const o = await offerStream(rd, wr, x, { final: kind === 'final' }, footerLast);
      ids = o.ids;
      pagesSent = o.pagesSent;
    } else {
      ids = (await sendStream(rd, wr, x, { final: kind === 'final' })).ids;
    }
    record(c, kind, x.pages, pagesSent, wr.bytes - wire0, t0);
    // The stream carries the members in id order (the root's first), and the destination answers in stream order.
    const local = c.members.map((m) => m.id).sort((a, b) => a - b);
    if (ids.length === local.length) local.forEach((id, i) => remoteOf.set(id, ids[i]!));
    return ids[0]!;
  };
  try {
    await wr.magic();
    await wr.send({ t: 'hello', proto: 1, pid, startTime: readBasics(pid)?.startTime ?? null, dryRun: helloDryRun(opts), tree: true, ...(opts.samePid === false ? { samePid: false } : {}) });
    const hi = await rd.expect<TreeHello>('hello');
    if (hi.trees !== true) {
      throw new StasisError('UNSUPPORTED', `The destination's Stasis does not take process trees (an older version: it would kill only the root if the session broke). Nothing was frozen. Update Stasis there, or checkpoint the tree and send it (\`stasis checkpoint ${pid}\`, then \`stasis send ID --to ...\`).`);
    }
    negotiate = hi.negotiate === true;
    offers = hi.offers === true;
    footerLast = hi.footerLast === true;
    // Streams of versions 3 and 4 (checksum over the page hashes) only to a destination that reads them.
    checksum = hi.hashChecksum === true ? 'hashes' : 'bytes';
    memberRounds = hi.memberRounds === true;
    // Whatever the tree capture refuses (a member traced by another program, in another PID
    // namespace, a vfork child) is refused here, before anything is sent and with every member released.
    first = checkpointTree(store, pid, { full: true, label: 'migration: full' });
    const firstThere = await send(first, 'full');
    await wr.send({ t: 'preflight', id: firstThere });
    const preflight = await rd.expect<PreflightAnswer>('preflight');
    const { go, proceedUnsupported } = await goOnAfterPreflight(rd, wr, preflight, opts, hi);
    if (!go) {
      if (!preflight.ok) {
        throw new StasisError('PREFLIGHT_FAILED', `The destination cannot restore the tree of process ${pid} (${first.members.length} processes): ${preflight.items.filter((i) => !i.ok).map((i) => `${i.label}: ${i.reason}${i.fix ? ` (${i.fix})` : ''}`).join(' ')} Nothing was stopped: the tree runs on here.`, { items: preflight.items });
      }
      return { pid, dryRun: true, rounds, bytesSent, preflight: { ok: preflight.ok, items: preflight.items }, tree: { members: first.members.map((m) => ({ pid: m.pid, comm: m.comm, destinationPid: null })) }, ...(proceedUnsupported ? { proceedUnsupported } : {}) };
    }
    // The destination builds the whole tree from round 1 while it runs on here, and absorbs every
    // later round member by member: the downtime then holds the last round's changes and each
    // member's kernel state, not the whole tree's memory.
    let prep: { ok: boolean; reason?: string; ms?: number } | null = null;
    if (hi.treePrepare === true) {
      await wr.send({ t: 'prepare', id: firstThere });
      prep = await rd.expect<{ ok: boolean; reason?: string; ms?: number }>('prepared');
    }
    const max = Math.max(1, opts.maxRounds ?? 8);
    const small = opts.smallRound ?? 256;
    // With neither, every round would carry the whole tree again: the full round and the last one only.
    let prev = rounds[0]!.pagesSent;
    while ((memberRounds || offers) && rounds.length < max && prev > small) {
      const c = checkpointTree(store, pid, { label: `migration: round ${rounds.length + 1}` });
      stillWhole(first, c, rounds.length);
      if (!(await sendMembers(c, 'incremental'))) await send(c, 'incremental');
      const now = rounds[rounds.length - 1]!.pagesSent;
      // The dirty set stopped shrinking: more rounds would not shorten the freeze.
      if (now >= prev) break;
      prev = now;
    }
    const marks: { phase: string; at: number }[] = [];
    const last = checkpointTree(store, pid, { mode: 'hold', label: 'migration: final', onPhase: (p) => { marks.push({ phase: p, at: performance.now() }); } });
    held = last.held ?? null;
    const committedAt = performance.now();
    const frozenAt = held?.frozenAt ?? committedAt - last.frozenMs;
    stillWhole(first, last, rounds.length);
    const members = await sendMembers(last, 'final');
    // A destination that prepares trees restores the members at once, and groups them into one
    // tree checkpoint once the tree runs (the group's commit is then no part of the downtime).
    const byMembers = members !== null && hi.treePrepare === true;
    let id: number | null = null;
    let groupMs: number | null = null;
    if (members && !byMembers) {
      await wr.send({ t: 'group', ids: members });
      const g = await rd.expect<{ id: number; ms?: unknown }>('grouped');
      id = g.id;
      groupMs = typeof g.ms === 'number' && Number.isFinite(g.ms) ? g.ms : null;
    } else if (!members) id = await send(last, 'final');
    const sentAt = performance.now();
    await wr.send(byMembers ? { t: 'restore', members } : { t: 'restore', id });
    const restored = await rd.expect<Restored>('restored');
    const restoredAt = performance.now();
    held?.kill();
    held = null;
    // From here the tree exists only there: a lost confirmation is a warning, not a failure to undo.
    let confirmed = true;
    let byeWarning: string | undefined;
    try {
      await wr.send({ t: 'done' });
      const bye = await rd.expect<{ warning?: unknown; checkpointId?: unknown }>('bye');
      if (typeof bye.warning === 'string' && bye.warning !== restored.warning) byeWarning = bye.warning.slice(0, 2000);
      // The tree checkpoint its members were grouped into after the restore.
      if (byMembers && typeof bye.checkpointId === 'number' && Number.isInteger(bye.checkpointId)) id = bye.checkpointId;
    } catch {
      confirmed = false;
    }
    const there = destinationPids(restored.members);
    const lost = confirmed ? undefined : `The destination did not confirm that it keeps the tree (the connection broke after the restore): if it is not running there (root pid ${restored.pid}), restore its checkpoint ${id !== null ? `#${id}` : `grouped from #${members!.join(', #')} (\`stasis list\`)`} there, or #${last.id} here.`;
    const warning = [restored.warning, byeWarning, lost].filter(Boolean).join(' ');
    const at = (p: string): number => marks.find((m) => m.phase === p)?.at ?? committedAt;
    return {
      pid, dryRun: false, rounds, bytesSent, preflight: { ok: preflight.ok, items: preflight.items },
      destination: {
        pid: restored.pid, checkpointId: id ?? members![0]!, restoreMs: restored.durationMs, prepared: restored.prepared === true, steps: restoreSteps(restored.steps),
        ...(prep?.ok ? { prepareMs: prep.ms ?? 0 } : { unprepared: prep ? (prep.reason ?? 'no reason given').slice(0, 2000) : 'an older Stasis that does not prepare trees' }),
        ...(restored.prepared !== true && prep?.ok ? { unprepared: 'a round changed what it had built ahead (a member\'s mappings, a new or exited process, a socketpair\'s queue, ...)' } : {}),
        ...(warning ? { warning } : {}),
      },
      downtimeMs: +(restoredAt - frozenAt).toFixed(1),
      frozenMs: +(committedAt - frozenAt).toFixed(1),
      cutover: [
        { step: 'freeze every member, registers and kernel state', ms: +(at('frozen') - frozenAt).toFixed(2) },
        { step: 'pages of every member into the checkpoint (with pre-copy: what each wrote since its live read), commit', ms: +(committedAt - at('frozen')).toFixed(2) },
        { step: `send the last round (member by member, or whole), import it there${members ? ' (a prepared tree absorbs each member)' : ''}${members && !byMembers ? ', group' : ''}`, ms: +(sentAt - committedAt).toFixed(2) },
        ...(members ? [
          { step: '  of which there: receive and import each member\'s last round', ms: +atDst.importMs.toFixed(2) },
          { step: '  of which there: write each member\'s last round into the prepared tree', ms: +atDst.absorbMs.toFixed(2) },
          ...(groupMs !== null ? [{ step: '  of which there: group the members into a tree checkpoint', ms: groupMs }] : []),
        ] : []),
        { step: `restore the tree there (prepared: the rest of the steps${byMembers ? '; its grouping comes after' : ''})`, ms: +(restoredAt - sentAt).toFixed(2) },
      ],
      tree: {
        members: last.members.map((m) => ({ pid: m.pid, comm: m.comm, destinationPid: there.get(m.pid) ?? null })),
        frozenPages: last.members.reduce((n, m) => n + m.frozenPages, 0), preCopied: last.members.filter((m) => m.freeze === 'pre-copy').length,
      },
    };
  } catch (e) {
    const wasHeld = held !== null;
    held?.resume();
    await wr.send({ t: 'abort', reason: (e as Error).message }).catch(() => undefined);
    if (e instanceof StasisError && e.code === 'PREFLIGHT_FAILED') throw e;
    const msg = (e as Error).message;
    const code = e instanceof StasisError ? e.code : 'INTERNAL';
    const n = first ? `${first.members.length} processes` : 'its children';
    throw new StasisError(code, `Migration of the tree of process ${pid} (${n}) failed after ${rounds.length} round(s): ${msg}${/\.$/.test(msg) ? '' : '.'} ${wasHeld ? 'Every process was frozen for the last round and now runs on here untouched' : 'The tree runs on here untouched'}; the destination discards what it received and starts nothing.`);
  }
}

/**
 * Refuses a round whose tree lost a member since round 1: the destination's pre-flight ran on the
 * tree with it, and a process that exited mid-migration is one whose end (its exit status, what it
 * wrote last) the user would not find on either side.
 */
function stillWhole(first: TreeCheckpointResult, now: TreeCheckpointResult, after: number): void {
  const have = new Set(now.members.map((m) => m.pid));
  const gone = first.members.filter((m) => !have.has(m.pid));
  if (!gone.length) return;
  throw new StasisError('PROCESS_GONE', `${gone.map((m) => `process ${m.pid} (${m.comm})`).join(' and ')} of the tree exited during the migration (after round ${after}); the tree that would arrive is not the one the destination checked. Migrate it again.`);
}

/** The destination's map of original PIDs to its own, taken only as far as it has the expected shape (another machine's word). */
function destinationPids(x: unknown): Map<number, number> {
  const out = new Map<number, number>();
  if (!Array.isArray(x)) return out;
  for (const e of x.slice(0, 4096) as unknown[]) {
    const o = e as { pid?: unknown; originalPid?: unknown } | null;
    if (o && Number.isInteger(o.pid) && Number.isInteger(o.originalPid)) out.set(o.originalPid as number, o.pid as number);
  }
  return out;
}
