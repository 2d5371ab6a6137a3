/**
 * A schedule's "also send to HOST:PORT": after a run commits a checkpoint, the schedule's
 * checkpoints the destination has not confirmed are sent there in the background, through a
 * replication session (migrate/sync.ts: only the pages the destination lacks, by hash; a break is
 * reconnected and resumed from what the receiver kept). The run never waits for it and never fails because of
 * it: the checkpoint is committed first, and a failed send is only recorded in the schedule's
 * lastSend, with when it is tried again: the acting scheduler's tick sends again at retryAt
 * (backing off like a failed run: the RetryPolicy's base doubled per failure up to its cap, without
 * a limit on attempts), and a run committed before then sends sooner. Either way it catches up from
 * the last checkpoint the destination confirmed. A send recorded as in progress that this process
 * is not running (the process that ran it died) is taken up again when a scheduler starts acting.
 * One send per schedule at a time; a run committed meanwhile is sent when that send ends.
 * The token is read from schedules.db and never logged, emitted or put in an error.
 */
import { StasisError, toErrorData } from '../../../shared/errors';
import type { Store } from '../store/api';
import { SyncSender, type SyncLink } from '../migrate/sync';
import { parseAddress, tokenKey } from '../transfer/tls-link';
import { syncLinkTo } from '../transfer/send';
import type { ScheduleDb } from './db';
import type { LastSend, SendTarget } from './types';
import { backoffMs, type RetryPolicy } from './scheduler';

export interface SendToOptions {
  db: ScheduleDb;
  store: () => Store;
  emit?: (event: string, payload: unknown) => void;
  /** How long a send keeps reconnecting after a break before it is recorded as failed (default 60 s). */
  retryMs?: number;
  /** A link with nothing moving this long counts as broken (default 60 s). */
  idleMs?: number;
  /** When a failed send is tried again: base doubled per failure in a row, up to cap (max is not used: sends never give up). */
  retry: Pick<RetryPolicy, 'baseMs' | 'capMs'>;
  /** Tests: how a link is opened (default TLS to the target's address). */
  open?: (to: SendTarget) => () => Promise<SyncLink>;
}

export function lastSendJson(l: LastSend) {
  return { ...l, at: new Date(l.at).toISOString(), failures: l.failures ?? 0, retryAt: l.retryAt ? new Date(l.retryAt).toISOString() : null };
}

export class ScheduleSendTo {
  private readonly running = new Map<number, Promise<void>>();
  private readonly again = new Set<number>();
  private readonly ac = new AbortController();
  private adopted = false;

  constructor(private readonly opts: SendToOptions) {}

  /** A run of schedule id committed a checkpoint: send what the destination lacks, now or after the send in progress. */
  kick(id: number): void {
    if (this.ac.signal.aborted) return;
    if (this.running.has(id)) { this.again.add(id); return; }
    const p = this.sendPending(id).catch(() => undefined).finally(() => {
      this.running.delete(id);
      if (this.again.delete(id)) this.kick(id);
    });
    this.running.set(id, p);
  }

  /**
   * The acting scheduler's tick: sends again each failed send whose retryAt has come, and, on its
   * first tick, each one recorded as in progress that no send of this process runs (its process
   * died mid-send).
   */
  retryDue(now: number): void {
    if (this.ac.signal.aborted) return;
    // Sends left 'sending' are taken up once, when this scheduler starts acting: later, one could
    // be another process's still running (it acted before this one took the lock over).
    const adopt = !this.adopted;
    this.adopted = true;
    for (const s of this.opts.db.list()) {
      const l = s.lastSend;
      if (!s.sendTo || !l || this.running.has(s.id)) continue;
      if ((l.result === 'failed' && l.retryAt != null && l.retryAt <= now) || (adopt && l.result === 'sending')) this.kick(s.id);
    }
  }

  /** Resolves when no send is in progress (tests, and shutdown after stop()). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()]);
  }

  /** Cuts sends in progress (the destination keeps what fully arrived, to resume from) and waits for them. */
  async stop(): Promise<void> {
    this.ac.abort();
    this.again.clear();
    await this.idle();
  }

  private record(id: number, l: LastSend): void {
    try {
      this.opts.db.update(id, { lastSend: l });
    } catch (e) {
      // Removed meanwhile: nobody is left to show it to.
      if (e instanceof StasisError && e.code === 'NOT_FOUND') return;
      throw e;
    }
    this.opts.emit?.('schedule.send', { scheduleId: id, lastSend: lastSendJson(l) });
  }

  private async sendPending(id: number): Promise<void> {
    const s = this.opts.db.get(id);
    if (!s?.sendTo) return;
    const to = s.sendTo;
    const store = this.opts.store();
    const through = s.lastSend?.sentThrough ?? null;
    const ours = [...this.opts.db.checkpointIdsOf(id)].filter((c) => store.get(c) !== null).sort((a, b) => a - b);
    // The first send (a destination just set) starts with the newest; after that, each one in order,
    // so a chain restarted by a full checkpoint leaves none of the older chain's unsent ones behind.
    const todo = through === null ? ours.slice(-1) : ours.filter((c) => c > through);
    if (todo.length === 0) {
      // Nothing left to send (pruned meanwhile): a failed or cut-off send stops being retried.
      const l = s.lastSend;
      if (l && l.result !== 'ok' && (l.result === 'sending' || l.retryAt != null)) {
        this.record(id, { ...l, result: 'failed', error: l.error ?? 'The send was cut off (the process running it ended).', retryAt: null, at: Date.now() });
      }
      return;
    }
    const newest = todo[todo.length - 1]!;
    const failures = s.lastSend?.failures ?? 0;
    const base: Omit<LastSend, 'result' | 'at'> = { checkpointId: newest, remoteId: null, sentThrough: through, checkpoints: 0, pagesSent: 0, bytes: 0, error: null, failures, retryAt: null };
    this.record(id, { ...base, result: 'sending', at: Date.now() });
    let sender: SyncSender | null = null;
    const out = { ...base };
    try {
      const open = this.opts.open ? this.opts.open(to) : syncLinkTo(parseAddress(to.address, false), tokenKey(to.token), this.opts.idleMs ?? 60_000);
      sender = new SyncSender(store, open, { signal: this.ac.signal, retryMs: this.opts.retryMs ?? 60_000 });
      for (const c of todo) {
        // Pruned by retention since the list was made: the destination needs it no more than this store.
        if (store.get(c) === null) continue;
        let r;
        try {
          r = await sender.send(c);
        } catch (e) {
          if (e instanceof StasisError && e.code === 'NOT_FOUND' && store.get(c) === null) continue;
          throw e;
        }
        if (!r.already) out.checkpoints += r.checkpoints.length;
        out.pagesSent += r.pagesSent;
        out.sentThrough = c;
        if (c === newest) out.remoteId = r.remote;
      }
      await sender.close();
      this.record(id, { ...out, bytes: sender.wireBytes, result: 'ok', at: Date.now(), failures: 0 });
    } catch (e) {
      await sender?.close().catch(() => undefined);
      const why = toErrorData(e).message;
      const at = Date.now();
      this.record(id, { ...out, bytes: sender?.wireBytes ?? 0, result: 'failed', at, error: why, failures: failures + 1, retryAt: at + backoffMs(this.opts.retry, failures + 1) });
    }
  }
}
