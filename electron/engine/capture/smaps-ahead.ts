/**
 * /proc/PID/smaps read on a worker thread while this one copies the frozen pages: the kernel walks
 * every page table to write it (15-30 ms for 1 GiB here), and a 'hold' checkpoint (a migration's
 * last round) needs its VmFlags while the process is held, so the walk would otherwise add to the
 * downtime. Still read while frozen, so the flags are exact. The worker is made once (warm() before
 * the freeze: a thread takes tens of ms to start) and never keeps the process alive; a read is
 * armed before the freeze too (its channel made and handed over: up to ~3 ms of postMessage and
 * MessageChannel), so starting it while the process is frozen is one atomic store.
 *
 *   warm();                          // early, e.g. when a hold capture starts
 *   const armed = arm();             // before the freeze
 *   const ahead = armed.go(pid);     // frozen: the worker starts reading
 *   ...copy pages...
 *   const entries = ahead.take();    // parsed smaps (waits for the worker if it is not done)
 *   armed.cancel();                  // always (a no-op once taken): frees the worker if go never came
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { StasisError } from '../../../shared/errors';
import { parseSmaps, readSmaps, type MapEntry } from '../proc/maps';

// CommonJS source: an eval worker needs no file of its own next to a bundle. flag[0]: 0 armed,
// 1 go (flag[1] the pid), -1 cancelled, 2 answered.
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
parentPort.on('message', ({ port, flag }) => {
  const f = new Int32Array(flag);
  Atomics.wait(f, 0, 0);
  if (Atomics.load(f, 0) !== 1) { port.close(); return; }
  let text = null, error = null;
  try { text = readFileSync('/proc/' + Atomics.load(f, 1) + '/smaps', 'utf8'); } catch (e) { error = String(e && e.message); }
  port.postMessage({ text, error });
  port.close();
  Atomics.store(f, 0, 2);
  Atomics.notify(f, 0);
});
`;

let worker: Worker | null = null;
let broken = false;
/** How many reads the worker answered (a test tells them from the fallback by it). */
export const answered = { count: 0 };

export function warm(): void {
  if (worker || broken) return;
  try {
    worker = new Worker(SOURCE, { eval: true });
    worker.unref();
    worker.on('error', () => { broken = true; worker = null; });
  } catch {
    broken = true;
  }
}

/** take(): the entries (waits for the read); ready(): whether take() would not wait. */
export interface SmapsAhead { take(): MapEntry[]; ready(): boolean }
export interface ArmedSmaps { go(pid: number): SmapsAhead; cancel(): void }

/** A read of some process's smaps, ready to start (see the module comment); read here if the worker is unavailable. */
export function arm(): ArmedSmaps {
  warm();
  const w = worker;
  if (!w) return { go: (pid) => ({ take: () => readSmaps(pid), ready: () => true }), cancel: () => undefined };
  const flag = new SharedArrayBuffer(8);
  const f = new Int32Array(flag);
  const { port1, port2 } = new MessageChannel();
  w.postMessage({ port: port2, flag }, [port2]);
  let started = false;
  return {
    go: (pid) => {
      started = true;
      Atomics.store(f, 1, pid);
      Atomics.store(f, 0, 1);
      Atomics.notify(f, 0);
      return { take: () => collect(pid, port1, f), ready: () => Atomics.load(f, 0) === 2 };
    },
    cancel: () => {
      if (started) return;
      started = true;
      Atomics.store(f, 0, -1);
      Atomics.notify(f, 0);
      port1.close();
    },
  };
}

/** Starts reading pid's smaps on the worker now; take() gives the entries. */
export function readAhead(pid: number): SmapsAhead {
  return arm().go(pid);
}

function collect(pid: number, port: MessagePort, f: Int32Array): MapEntry[] {
  try {
    // A worker that died meanwhile never answers: read it here after a while rather than hang.
    if (Atomics.wait(f, 0, 1, 5000) === 'timed-out') return readSmaps(pid);
    const m = receiveMessageOnPort(port)?.message as { text: string | null; error: string | null } | undefined;
    if (!m) return readSmaps(pid);
    if (m.text === null) throw new StasisError('PROCESS_GONE', `Reading /proc/${pid}/smaps failed: ${m.error ?? 'unknown error'}.`);
    answered.count++;
    return parseSmaps(m.text);
  } finally {
    port.close();
  }
}
