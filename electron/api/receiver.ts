/**
 * The app's receive listener (one per engine), the engine's startListener as `stasis receive
 * --listen` uses it: started by transfer.listen with a fresh pairing token, it takes one sender, or
 * several in a row while they are only dry runs of a migration (so the real one can follow with the
 * token the user already copied) or replication sessions that broke off (their sender resumes), or
 * every sender until stopped when asked to keep listening (`send PID --follow`, a schedule's "also
 * send to"). Plain streams, replication sessions (`send --to`, each checkpoint as it lands) and
 * migrations are kept as arrivals and pushed as 'transfer.receiver' events; the token is returned
 * to the caller only and kept nowhere else. The store is reached through the same API calls as every client.
 */
import { networkInterfaces } from 'node:os';
import { StasisError } from '../../shared/errors';
import type { Arrival, ReceiverStatus } from '../../shared/contract/transfer';
import type { CallName, CallInput, CallOutput } from '../../shared/contract';
import { newToken, parseAddress } from '../engine/transfer/tls-link';
import { answeredDryRun, startListener, type Listener, type Received } from '../engine/transfer/receive';
import { prepareMigrationRestore } from '../engine/restore';
import { groupAsTree } from '../engine/migrate/tree-group';
import type { HandlerContext } from './context';
import { invoke } from './invoke';

const MAX_ARRIVALS = 50;

/** A dry run never starts a process here, answered or refused: the user may fix what it said and check again, or migrate, with the same token. */
function dryRun(r: Received): boolean {
  return 'migration' in r && r.migration.dryRun && !r.migration.restored;
}

let listener: Listener | null = null;
/** Set while a listen call awaits its socket: a second one must not start another listener meanwhile. */
let starting = false;
let address: string | null = null;
let keeping = false;
let error: string | null = null;
const arrivals: Arrival[] = [];

/** A wildcard listener is reached through the machine's own addresses: list them, so the user need not look them up. */
function reachableAt(at: string | null): string[] {
  const m = at ? /^(?:\[(.+)\]|(.+)):(\d+)$/.exec(at) : null;
  if (!m || !['0.0.0.0', '::'].includes(m[1] ?? m[2]!)) return [];
  const v6 = (m[1] ?? m[2]) === '::';
  return Object.values(networkInterfaces()).flat()
    .filter((i): i is NonNullable<typeof i> => !!i && !i.internal && (v6 || i.family === 'IPv4') && !i.address.startsWith('fe80:'))
    .map((i) => (i.family === 'IPv6' ? `[${i.address}]:${m[3]}` : `${i.address}:${m[3]}`));
}

export function receiverStatus(): ReceiverStatus {
  return { listening: listener !== null, address, keep: listener !== null && keeping, reachableAt: reachableAt(address), arrivals: [...arrivals], error };
}

/** A replication session is recorded as each checkpoint lands (onImported); at its end only when it did not end well. */
function describeReplication(r: Extract<Received, { replication: unknown }>): Omit<Arrival, 'at'> | null {
  const x = r.replication;
  if (x.complete) return null;
  // Without keep a refusal also ends the listener, which records it as its failure.
  if (x.refused) return !keeping ? null : { kind: 'failed', checkpointIds: [], pid: null, sourcePid: null, message: `Refused a replication session: ${x.failure ?? 'no reason given'}.` };
  return { kind: 'failed', checkpointIds: [], pid: null, sourcePid: null, message: `A replication session broke off (${(x.failure ?? 'no reason given').slice(0, 200)}); what fully arrived is kept, and the sender may resume with the same token.` };
}

function describe(r: Received): Omit<Arrival, 'at'> | null {
  if ('replication' in r) return describeReplication(r);
  if ('ids' in r) return { kind: 'checkpoints', checkpointIds: r.ids, pid: null, sourcePid: null, message: `Received checkpoint(s) ${r.ids.map((i) => `#${i}`).join(', ')}.` };
  const m = r.migration;
  const kept = m.discarded ? [] : m.checkpointIds;
  if (m.restored) {
    return { kind: 'migration', checkpointIds: kept, pid: m.restored.pid, sourcePid: m.sourcePid, message: `Process ${m.sourcePid} of the sender runs here as PID ${m.restored.pid} (checkpoint #${m.restored.checkpointId}, ${m.restored.prepared ? 'prepared while it ran there' : 'restored from scratch'}).` };
  }
  if (dryRun(r)) {
    const how = answeredDryRun(r) ? 'pre-flight answered' : m.failure?.includes('pre-flight refused') ? 'the pre-flight here refused it' : `it ended early (${m.failure ?? 'no reason given'})`;
    return { kind: 'dry-run', checkpointIds: kept, pid: null, sourcePid: m.sourcePid, message: `Dry run of the migration of process ${m.sourcePid}: ${how}; what arrived was discarded. Still listening with the same token.` };
  }
  return { kind: 'failed', checkpointIds: kept, pid: null, sourcePid: m.sourcePid, message: `The migration of process ${m.sourcePid} did not complete: ${m.failure ?? 'no reason given'}.${m.discarded ? ' What arrived was discarded.' : ''}` };
}

function record(a: Omit<Arrival, 'at'> | null, ctx: HandlerContext): void {
  if (!a) return;
  arrivals.unshift({ at: new Date().toISOString(), ...a });
  arrivals.length = Math.min(arrivals.length, MAX_ARRIVALS);
  ctx.emit('transfer.receiver', receiverStatus());
}

export async function startReceiver(at: string, keep: boolean, ctx: HandlerContext): Promise<ReceiverStatus & { token: string }> {
  if (listener || starting) throw new StasisError('CONFLICT', `Already listening${address ? ` on ${address}` : ''}; stop that listener first.`);
  // Sessions outlive the call that started the listener: no signal, no call id.
  const base: HandlerContext = { storeDir: ctx.storeDir, store: ctx.store, emit: ctx.emit, ...(ctx.runtime ? { runtime: ctx.runtime } : {}) };
  const call = async <N extends CallName>(name: N, input: CallInput<N>): Promise<CallOutput<N>> => {
    const r = await invoke(name, input, base);
    if (!r.ok) throw new StasisError(r.error.code, r.error.message, r.error.detail);
    return r.value as CallOutput<N>;
  };
  const { token, key } = newToken();
  starting = true;
  const l = await startListener(parseAddress(at, true), key, {
    storeDir: ctx.storeDir,
    // For pages negotiated by hash (a read of where pages are stored, beside the import call).
    store: ctx.store(),
    importFile: (file) => call('checkpoints.import', { file }),
    preflight: (id, how) => call('restore.preflight', { id, ...how }),
    restore: (id, how) => call('restore.run', { id, ...how }),
    // Engine-direct: a half-built process cannot cross an API call.
    prepare: async (id, how) => prepareMigrationRestore(ctx.store(), id, { ...how }),
    // Engine-direct too: one index transaction grouping a tree's members received one by one.
    groupTree: async (ids) => groupAsTree(ctx.store(), ids),
    remove: async (ids) => { await call('checkpoints.remove', { ids }); },
    onImported: (x) => record({
      kind: 'replicated', checkpointIds: x.ids, pid: null, sourcePid: null,
      message: `Replicated checkpoint(s) ${x.ids.map((i) => `#${i}`).join(', ')}: ${x.pagesReceived} pages received, ${x.pagesHeld} already here${x.pagesResumed ? `, ${x.pagesResumed} resumed from an earlier attempt` : ''}.`,
    }, base),
  }, {
    keep,
    again: dryRun,
    onSession: (r) => record(describe(r), base),
    onFailed: (e) => record({ kind: 'failed', checkpointIds: [], pid: null, sourcePid: null, message: `A transfer failed (still listening): ${e.message}` }, base),
  }).finally(() => { starting = false; });
  listener = l;
  keeping = keep;
  address = l.address;
  error = null;
  const mine = l;
  // A session that was running when the user pressed Stop still reports what it brought.
  const ended = (): void => { if (listener === mine) { listener = null; address = null; } };
  // Every session was recorded as it ended (onSession); here only how the listener itself ended.
  l.done.then(() => {
    ended();
    ctx.emit('transfer.receiver', receiverStatus());
  }, (e: unknown) => {
    ended();
    error = (e as Error).message;
    record({ kind: 'failed', checkpointIds: [], pid: null, sourcePid: null, message: `A transfer failed: ${error}` }, base);
  });
  ctx.emit('transfer.receiver', receiverStatus());
  return { ...receiverStatus(), token };
}

export function stopReceiver(ctx: HandlerContext): ReceiverStatus {
  if (listener) {
    listener.close();
    listener = null;
    address = null;
    ctx.emit('transfer.receiver', receiverStatus());
  }
  return receiverStatus();
}

/** The engine is shutting down: stop listening (no event: nobody is left to show it). */
export function closeReceiver(): void {
  listener?.close();
  listener = null;
  address = null;
}
