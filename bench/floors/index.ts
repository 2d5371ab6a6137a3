/**
 * What the machine itself allows, measured in the same run as the benchmarks that quote it, so a
 * target can be set against a floor: durable write speed of the disk, and the kernel's own cost of
 * a read pattern (replayed in C, no JavaScript). Not a benchmark of its own (bench/run.ts runs only
 * bench/*.ts).
 */
import { spawnSync } from 'node:child_process';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const here = new URL('.', import.meta.url).pathname;

/** Seconds to write `bytes` of incompressible data to a new file in dir with 1 MiB writes, then fsync it (what a commit must at least do). */
export function durableWriteSecs(dir: string, bytes: number): number {
  const chunk = randomFillSync(Buffer.alloc(1 << 20));
  const file = path.join(dir, `floor-${process.pid}.bin`);
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    const t0 = performance.now();
    for (let done = 0; done < bytes; done += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
    fs.fsyncSync(fd);
    return (performance.now() - t0) / 1000;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file);
  }
}

export interface ReadLog { path: string; offset: number; length: number }

/** Runs fn and returns every fs.readSync it made with an explicit position (path, offset, length). */
export function recordReads(fn: () => void): ReadLog[] {
  const cjsFs = createRequire(import.meta.url)('node:fs') as typeof fs;
  const orig = cjsFs.readSync;
  const log: ReadLog[] = [];
  const paths = new Map<number, string>();
  const wrapped = ((fd: number, buf: NodeJS.ArrayBufferView, off: number, len: number, pos: number | bigint | null) => {
    if (typeof pos === 'number') {
      let p = paths.get(fd);
      if (p === undefined) { p = fs.readlinkSync(`/proc/self/fd/${fd}`); paths.set(fd, p); }
      log.push({ path: p, offset: pos, length: len });
    }
    return orig(fd, buf, off, len, pos);
  }) as typeof fs.readSync;
  cjsFs.readSync = wrapped;
  syncBuiltinESMExports();
  try {
    fn();
  } finally {
    cjsFs.readSync = orig;
    syncBuiltinESMExports();
  }
  return log;
}

/** Best of reps replays of reads with pread(2) from C, in ms (page cache as it is). */
export function replayReadsMs(reads: ReadLog[], reps = 5): number {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-floor-'));
  try {
    return replay(reads, workDir, reps);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

function replay(reads: ReadLog[], workDir: string, reps: number): number {
  const bin = path.join(workDir, 'read-replay');
  const cc = spawnSync('cc', ['-O2', '-o', bin, path.join(here, 'read-replay.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc read-replay.c failed: ${cc.stderr}`);
  const list = path.join(workDir, 'reads.txt');
  fs.writeFileSync(list, reads.map((r) => `${r.path} ${r.offset} ${r.length}\n`).join(''));
  const r = spawnSync(bin, [list, String(reps)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`read-replay failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}
