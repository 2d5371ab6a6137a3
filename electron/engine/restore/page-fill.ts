/**
 * Copies pages into the process being restored, in batches of jobs: each job takes its bytes from a
 * segment file (at an offset: nothing read into the engine first) or from a buffer, and puts them at
 * an address by one of three means: UFFDIO_COPY into fresh anonymous memory, process_vm_writev into
 * writable pages, /proc/PID/mem into read-only ones. The native addon runs a batch on several
 * threads (the kernel's page allocation and copy is the restore's cost, and it scales over cores);
 * without the addon the same jobs run one by one here. Jobs of a batch must touch disjoint pages.
 */
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { StasisError } from '../../../shared/errors';
import { storeNative } from '../store/native-addon';
import type { Remote } from './remote';
import type { UffdFill } from './uffd-fill';

export type FillMethod = 'uffd' | 'write' | 'mem';
export type FillSource = { path: string; offset: number } | { data: Buffer; offset: number };

const METHOD: Record<FillMethod, bigint> = { uffd: 0n, write: 1n, mem: 2n };
/** Largest job: small enough that the threads share a batch evenly. */
const JOB_BYTES = 1 << 20;
/** A batch's bytes and files: bounds the buffers held and the descriptors open at once. */
const BATCH_BYTES = 64 << 20;
const BATCH_FILES = 64;

interface Job { dst: bigint; len: number; method: FillMethod; source: FillSource }

export class PageFill {
  private jobs: Job[] = [];
  private bytes = 0;
  private paths = new Set<string>();
  private scratch: Buffer | null = null;
  /** Time spent copying, for the restore's step report. */
  ms = 0;

  /** Called after each batch is in the process (the restore's progress: most of its time is spent here, not in handing out pages). */
  onFlushed: (() => void) | null = null;

  /** threads: how many copy at once with the addon (default: the cores, at most 4); STASIS_RESTORE_THREADS overrides. */
  constructor(private readonly r: Remote, private readonly uffd: UffdFill | null, private readonly threads = fillThreads()) {}

  /** Queues len bytes of source for address dst (page-aligned, a multiple of 4096). */
  add(dst: bigint, len: number, method: FillMethod, source: FillSource): void {
    for (let off = 0; off < len; off += JOB_BYTES) {
      const n = Math.min(JOB_BYTES, len - off);
      const src: FillSource = 'path' in source ? { path: source.path, offset: source.offset + off } : { data: source.data, offset: source.offset + off };
      if ('path' in src && !this.paths.has(src.path) && this.paths.size >= BATCH_FILES) this.flush();
      this.jobs.push({ dst: dst + BigInt(off), len: n, method, source: src });
      this.bytes += n;
      if ('path' in src) this.paths.add(src.path);
      if (this.bytes >= BATCH_BYTES) this.flush();
    }
  }

  /** Copies every queued job; throws the first failure. */
  flush(): void {
    if (this.jobs.length === 0) return;
    const t0 = performance.now();
    const jobs = this.jobs;
    this.jobs = [];
    this.bytes = 0;
    const paths = [...this.paths];
    this.paths.clear();
    const fds = paths.map((p) => openSegment(p));
    try {
      if (storeNative?.fill && this.threads > 1) this.runNative(jobs, paths, fds);
      else this.runHere(jobs, paths, fds);
    } finally {
      for (const fd of fds) fs.closeSync(fd);
      this.ms += performance.now() - t0;
    }
    this.onFlushed?.();
  }

  private runNative(jobs: Job[], paths: string[], fds: number[]): void {
    const table = new BigUint64Array(jobs.length * 6);
    const buffers: Buffer[] = [];
    const bufferIndex = new Map<Buffer, number>();
    const fileIndex = new Map(paths.map((p, i) => [p, i]));
    jobs.forEach((j, i) => {
      let kind: bigint, index: number;
      if ('path' in j.source) {
        kind = 0n;
        index = fileIndex.get(j.source.path)!;
      } else {
        kind = 1n;
        let k = bufferIndex.get(j.source.data);
        if (k === undefined) { k = buffers.length; buffers.push(j.source.data); bufferIndex.set(j.source.data, k); }
        index = k;
      }
      table.set([j.dst, BigInt(j.len), METHOD[j.method], kind, BigInt(index), BigInt(j.source.offset)], i * 6);
    });
    try {
      storeNative!.fill!(this.r.pid, this.uffd?.descriptor ?? -1, this.r.memDescriptor, table, buffers, Int32Array.from(fds), this.threads);
    } catch (e) {
      throw new StasisError('INTERNAL', `Writing the saved pages into the new process failed: ${(e as Error).message}. The restore was abandoned.`);
    }
  }

  private runHere(jobs: Job[], paths: string[], fds: number[]): void {
    const fdOf = new Map(paths.map((p, i) => [p, fds[i]]));
    for (const j of jobs) {
      let bytes: Buffer;
      if ('path' in j.source) {
        this.scratch ??= Buffer.allocUnsafe(JOB_BYTES);
        bytes = this.scratch.subarray(0, j.len);
        let got = 0;
        while (got < j.len) {
          const n = fs.readSync(fdOf.get(j.source.path)!, bytes, got, j.len - got, j.source.offset + got);
          if (n === 0) throw new StasisError('CORRUPT', `Segment file ${j.source.path} ends before the page it should hold at offset ${j.source.offset + got}. Run \`stasis verify\`.`);
          got += n;
        }
      } else {
        bytes = j.source.data.subarray(j.source.offset, j.source.offset + j.len);
      }
      if (j.method === 'uffd' && this.uffd) this.uffd.copy(j.dst, bytes, (at, page) => this.r.writeBulk(at, page));
      else if (j.method === 'mem') this.r.write(j.dst, bytes);
      else this.r.writeBulk(j.dst, bytes);
    }
  }
}

function openSegment(path: string): number {
  try {
    return fs.openSync(path, 'r');
  } catch (e) {
    throw new StasisError('CORRUPT', `Segment file ${path} is missing (${(e as Error).message}). Run \`stasis verify\` to see which checkpoints it affects.`);
  }
}

function fillThreads(): number {
  const env = Number(process.env.STASIS_RESTORE_THREADS);
  if (Number.isInteger(env) && env >= 1) return Math.min(env, 16);
  return Math.max(1, Math.min(4, availableParallelism()));
}
