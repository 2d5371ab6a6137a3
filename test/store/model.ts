/**
 * Test support for the store: a plain in-memory reference of what each checkpoint must
 * materialize, minimal ProcessStates, temp store directories, and a materialize-to-map helper.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ProcessState, MappingState } from '../../electron/engine/state/process-state';
import { STATE_VERSION } from '../../electron/engine/state/process-state';
import type { Store } from '../../electron/engine/store/api';

export const PAGE = 4096;

export function tempDir(prefix = 'stasis-store-'): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export function mapping(startVpn: number, pages: number, p = ''): MappingState {
  return {
    start: BigInt(startVpn) << 12n, end: BigInt(startVpn + pages) << 12n, perms: 'rw-p', offset: 0n, dev: '00:00', inode: 0,
    path: p, deleted: false, kind: 'anon', vmFlags: ['rd', 'wr'],
  };
}

export function makeState(mappings: MappingState[], pid = 4242): ProcessState {
  return {
    version: STATE_VERSION, pid, startTime: '12345', ppid: 1, pgid: pid, sid: pid, uid: 0, gid: 0, comm: 'fixture',
    exe: '/bin/fixture', cmdline: ['fixture'], cwd: '/', root: '/', umask: 0o22, personality: 0, rlimits: [],
    mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
    auxv: [], mappings, threads: [], sigactions: [], sharedPending: 0n, fds: [], timers: {}, kernel: { release: 'test' }, warnings: [],
  };
}

/** Deterministic pseudo-random generator (xorshift32) so failures reproduce from the seed. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

export function randomPage(r: () => number): Buffer {
  const b = Buffer.allocUnsafe(PAGE);
  for (let i = 0; i < PAGE; i += 4) b.writeUInt32LE(Math.floor(r() * 2 ** 32), i);
  return b;
}

/** A page that compresses well (repeated text with a random tag), like much of a real heap. */
export function textPage(r: () => number): Buffer {
  const b = Buffer.alloc(PAGE);
  b.write(`object ${Math.floor(r() * 1e9)} field=value; `.repeat(120), 'latin1');
  return b;
}

/** vpn -> content (hex of sha-less compare is too slow; keep buffers). Zero pages are all-zero buffers. */
export type View = Map<number, Buffer>;

export function materializeToMap(store: Store, id: number): View {
  const out: View = new Map();
  let last = -1;
  for (const run of store.materialize(id)) {
    const vpn0 = Number(run.vaddr >> 12n);
    if (vpn0 <= last) throw new Error(`materialize(${id}) is not in address order at vpn ${vpn0}`);
    for (let i = 0; i < run.pages; i++) {
      out.set(vpn0 + i, run.data ? Buffer.from(run.data.subarray(i * PAGE, (i + 1) * PAGE)) : Buffer.alloc(PAGE));
    }
    last = vpn0 + run.pages - 1;
  }
  return out;
}

export function assertSameView(actual: View, expected: View, what: string): void {
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  if (missing.length || extra.length) throw new Error(`${what}: pages missing ${missing.slice(0, 5)} (${missing.length}), extra ${extra.slice(0, 5)} (${extra.length})`);
  for (const [k, v] of expected) if (!actual.get(k)!.equals(v)) throw new Error(`${what}: page vpn ${k} differs`);
}

/** Writes a checkpoint giving every page of view (complete coverage) with given mappings. */
/** beforeCommit: runs between the last page and the commit (a migration defers durability there). */
export function writeComplete(store: Store, targetId: number, parentId: number | null, view: View, mappings: MappingState[], beforeCommit?: () => void): number {
  const w = store.begin({ targetId, parentId, mode: parentId === null ? 'full' : 'incremental', dirtyTracking: 'hash', coverage: 'complete' });
  w.setState(makeState(mappings));
  const keys = [...view.keys()].sort((a, b) => a - b);
  let i = 0;
  while (i < keys.length) {
    let j = i;
    while (j + 1 < keys.length && keys[j + 1] === keys[j] + 1 && j - i < 31) j++;
    const buf = Buffer.concat(keys.slice(i, j + 1).map((k) => view.get(k)!));
    w.addPages(BigInt(keys[i]) << 12n, buf);
    i = j + 1;
  }
  beforeCommit?.();
  return w.commit().id;
}
