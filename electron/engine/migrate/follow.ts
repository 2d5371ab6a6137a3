/**
 * Continuous replication (`stasis send PID --follow`): watches the store index for each new
 * checkpoint of one running process (taken by a schedule, by hand, by any Stasis sharing the
 * store) and sends it as soon as it is committed, only what the receiver lacks (sync.ts). Ends
 * when the process has exited and its last checkpoint is sent, or when the signal fires (Ctrl-C)
 * between two sends; a break reconnects and resumes inside SyncSender.
 */
import { StasisError } from '../../../shared/errors';
import type { Store } from '../store/api';
import { readStat } from '../proc';
import type { SentCheckpoint, SyncSender } from './sync';

export interface FollowOptions {
  signal?: AbortSignal;
  /** How often the index is read (default 300 ms): a commit is sent at most this long after it. */
  pollMs?: number;
  onSent?: (s: SentCheckpoint) => void;
}

export interface FollowResult {
  pid: number;
  sent: SentCheckpoint[];
  /** Why it ended: the process exited, or it was stopped. */
  ended: 'exited' | 'stopped';
}

function startTimeOf(pid: number): string | null {
  try { return readStat(pid).startTime; } catch { return null; }
}

function wait(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function follow(store: Store, pid: number, sender: SyncSender, opts: FollowOptions = {}): Promise<FollowResult> {
  const startTime = startTimeOf(pid);
  if (startTime === null) throw new StasisError('PROCESS_GONE', `There is no running process ${pid} to follow; send one of its checkpoints with \`stasis send ID --to ...\`.`);
  const sent: SentCheckpoint[] = [];
  let last: number | null = null;
  const newest = (): number | null => {
    const t = store.listTargets().filter((x) => x.pid === pid && x.startTime === startTime).map((x) => store.latest(x.id)).filter((c) => c !== null);
    return t.length ? Math.max(...t.map((c) => c.id)) : null;
  };
  for (;;) {
    // Read before the liveness check: a checkpoint committed just before the exit is still sent.
    const gone = startTimeOf(pid) !== startTime;
    const id = newest();
    if (opts.signal?.aborted) return { pid, sent, ended: 'stopped' };
    if (id !== null && id !== last) {
      let s: SentCheckpoint;
      try {
        s = await sender.send(id);
      } catch (e) {
        if (opts.signal?.aborted) return { pid, sent, ended: 'stopped' };
        throw e;
      }
      sent.push(s);
      last = id;
      opts.onSent?.(s);
      continue;
    }
    if (gone) return { pid, sent, ended: 'exited' };
    await wait(opts.pollMs ?? 300, opts.signal);
  }
}
