/**
 * Zero test and content hash of every page of a chunk, on two cores. The BLAKE3 binding costs ~3 µs
 * of fixed overhead per call (measured: a 64-byte input costs 3.2 µs, a 4 KiB page 4.3-5.3 µs), so a
 * page's hash is call-bound, not byte-bound, and a batch API does not exist in the package: the only
 * lever left is a second thread. One helper thread hashes the upper part of each chunk while the
 * calling thread hashes the lower part; both use hash.ts's functions (the helper loads the same
 * package), so a page's hash never depends on which thread computed it.
 *
 * The helper talks through shared memory and Atomics (no event loop, no message per chunk), and is
 * an accelerator only: if it cannot start, or does not answer within a few seconds, the caller does
 * the whole chunk itself and stops using it.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { HASH_LEN, PAGE } from './format';
import { hashPage, isZeroAt } from './hash';

/** Pages per hand-off to the helper (4 MiB of shared input). Larger chunks are done in rounds. */
const SLOT_PAGES = 1024;
/** Below this many pages the hand-off costs more than it saves. */
const MIN_SPLIT_PAGES = 32;
/** The helper's share of a chunk: the caller also copies the helper's pages into shared memory. */
const HELPER_SHARE = 0.5;
const WAIT_MS = 5000;

// ctrl[0]: job sequence (bumped by the caller), ctrl[1]: last finished job (set by the helper),
// ctrl[2]: pages in the job, ctrl[3]: 1 = quit.
const HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { blake3 } = require(workerData.blake);
const ctrl = new Int32Array(workerData.ctrl);
const input = Buffer.from(workerData.input);
const hashes = Buffer.from(workerData.hashes);
const zero = new Uint8Array(workerData.zero);
const Z = Buffer.alloc(${PAGE});
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, 0, seen);
  seen = Atomics.load(ctrl, 0);
  if (Atomics.load(ctrl, 3) === 1) break;
  const n = ctrl[2];
  for (let i = 0; i < n; i++) {
    const o = i * ${PAGE};
    if (input[o] === 0 && input[o + ${PAGE - 1}] === 0 && Z.compare(input, o, o + ${PAGE}) === 0) { zero[i] = 1; continue; }
    zero[i] = 0;
    blake3(new Uint8Array(input.buffer, o, ${PAGE})).copy(hashes, i * ${HASH_LEN});
  }
  Atomics.store(ctrl, 1, seen);
  Atomics.notify(ctrl, 1);
}
`;

interface Helper {
  worker: Worker;
  ctrl: Int32Array;
  input: Buffer;
  hashes: Buffer;
  zero: Uint8Array;
  seq: number;
}

let helper: Helper | null | undefined;

function startHelper(): Helper | null {
  if (availableParallelism() < 2 || process.env.STASIS_HASH_THREADS === '1') return null;
  try {
    const ctrl = new SharedArrayBuffer(16);
    const input = new SharedArrayBuffer(SLOT_PAGES * PAGE);
    const hashes = new SharedArrayBuffer(SLOT_PAGES * HASH_LEN);
    const zero = new SharedArrayBuffer(SLOT_PAGES);
    const blake = createRequire(import.meta.url).resolve('@napi-rs/blake-hash');
    const worker = new Worker(HELPER_SOURCE, { eval: true, workerData: { ctrl, input, hashes, zero, blake } });
    worker.unref();
    worker.on('error', () => { helper = null; });
    return { worker, ctrl: new Int32Array(ctrl), input: Buffer.from(input), hashes: Buffer.from(hashes), zero: new Uint8Array(zero), seq: 0 };
  } catch (_e) {
    return null;
  }
}

function getHelper(): Helper | null {
  if (helper === undefined) helper = startHelper();
  return helper;
}

/** Pages the helper thread has digested in this thread's lifetime (tests check the split is used). */
export let helperPages = 0;

/** Stops the helper thread (tests; the thread is unref'd, so it never keeps a process alive). */
export function stopDigestHelper(): void {
  if (!helper) return;
  Atomics.store(helper.ctrl, 3, 1);
  Atomics.add(helper.ctrl, 0, 1);
  Atomics.notify(helper.ctrl, 0);
  void helper.worker.terminate();
  helper = undefined;
}

/** Per page of a chunk: zero[i] = 1 for an all-zero page (its hash slot is then left undefined), else hashes[i*32..] is its hash. */
export interface PageDigests {
  zero: Uint8Array;
  hashes: Buffer;
}

function digestRange(data: Buffer, from: number, to: number, out: PageDigests): void {
  for (let i = from; i < to; i++) {
    const o = i * PAGE;
    if (isZeroAt(data, o)) { out.zero[i] = 1; continue; }
    out.zero[i] = 0;
    hashPage(new Uint8Array(data.buffer, data.byteOffset + o, PAGE)).copy(out.hashes, i * HASH_LEN);
  }
}

/** Zero flags and hashes of the n pages of data (a page-aligned chunk), into out (sized for n). */
export function digestPages(data: Buffer, n: number, out: PageDigests): void {
  const h = n >= MIN_SPLIT_PAGES ? getHelper() : null;
  if (!h) { digestRange(data, 0, n, out); return; }
  for (let base = 0; base < n; ) {
    const round = Math.min(n - base, Math.floor(SLOT_PAGES / HELPER_SHARE));
    const theirs = Math.min(SLOT_PAGES, Math.floor(round * HELPER_SHARE));
    const mine = round - theirs;
    data.copy(h.input, 0, (base + mine) * PAGE, (base + round) * PAGE);
    h.ctrl[2] = theirs;
    const seq = ++h.seq;
    Atomics.store(h.ctrl, 0, seq);
    Atomics.notify(h.ctrl, 0);
    digestRange(data, base, base + mine, out);
    if (!waitFor(h, seq)) {
      // The helper is gone or stuck: do its share here and stop using it.
      helper = null;
      void h.worker.terminate();
      digestRange(data, base + mine, base + round, out);
    } else {
      out.zero.set(h.zero.subarray(0, theirs), base + mine);
      helperPages += theirs;
      h.hashes.copy(out.hashes, (base + mine) * HASH_LEN, 0, theirs * HASH_LEN);
    }
    base += round;
  }
}

function waitFor(h: Helper, seq: number): boolean {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const done = Atomics.load(h.ctrl, 1);
    if (done === seq) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    Atomics.wait(h.ctrl, 1, done, left);
  }
}
