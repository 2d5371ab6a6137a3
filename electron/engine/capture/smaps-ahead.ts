/**
 * /proc/PID/smaps read on a worker thread while this one copies the frozen pages: the kernel walks
 * every page table to write it (~30 ms for 1 GiB here), and a 'hold' checkpoint (a migration's last
 * round) needs its VmFlags while the process is held, so the walk would otherwise add to the
 * downtime. Still read while frozen, so the flags are exact. The worker is made once (warm() before
 * the freeze: a thread takes tens of ms to start) and never keeps the process alive.
 *
 *   warm();                  // early, e.g. when a hold capture starts
 *   const ahead = readAhead(pid);   // right after the freeze
 *   ...copy pages...
 *   const entries = ahead.take();   // parsed smaps (waits for the worker if it is not done)
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { StasisError } from '../../../shared/errors';
import { parseSmaps, readSmaps, type MapEntry } from '../proc/maps';

// CommonJS source: an eval worker needs no file of its own next to a bundle.
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
parentPort.on('message', ({ pid, port, flag }) => {
  let text = null, error = null;
  try { text = readFileSync('/proc/' + pid + '/smaps', 'utf8'); } catch (e) { error = String(e && e.message); }
  port.postMessage({ text, error });
  port.close();
  const f = new Int32Array(flag);
  Atomics.store(f, 0, 1);
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

export interface SmapsAhead { take(): MapEntry[] }

/** Starts reading pid's smaps on the worker; take() gives the entries (read here if the worker is unavailable). */
export function readAhead(pid: number): SmapsAhead {
  warm();
  const w = worker;
  if (!w) return { take: () => readSmaps(pid) };
  const flag = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  w.postMessage({ pid, port: port2, flag }, [port2]);
  return { take: () => collect(pid, port1, flag) };
}

function collect(pid: number, port: MessagePort, flag: SharedArrayBuffer): MapEntry[] {
  try {
    // A worker that died meanwhile never answers: read it here after a while rather than hang.
    if (Atomics.wait(new Int32Array(flag), 0, 0, 5000) === 'timed-out') return readSmaps(pid);
    const m = receiveMessageOnPort(port)?.message as { text: string | null; error: string | null } | undefined;
    if (!m) return readSmaps(pid);
    if (m.text === null) throw new StasisError('PROCESS_GONE', `Reading /proc/${pid}/smaps failed: ${m.error ?? 'unknown error'}.`);
    answered.count++;
    return parseSmaps(m.text);
  } finally {
    port.close();
  }
}
