/**
 * A migration's last round in memory, both ends in one process, this build against another
 * checkout's store modules (--baseline DIR) alternately: a checkpoint of PAGES pages changed on top
 * of a 32 MiB parent (every 16th page, as a program writing 1% a second leaves them), then
 *   source: exportStreamBytes as migrate/source.ts exportInMemory asks for it
 *     (this build: version 4 into memory touched beforehand; the baseline: version 2, fresh memory);
 *   wire:   the stream's 1 MiB frames copied into the receive buffer, as destination.ts
 *     receiveInMemory does (this build: into memory touched beforehand; the baseline: fresh);
 *   destination: streamDelta (this build: validated where it lies, pages laid out in touched
 *     scratch; the baseline: its own streamDelta).
 * Each sample in a child process of its own (`--child`), so every sample's memory is as fresh as a
 * CLI's last round finds it, after a 4-page round through the same calls (code and addon loaded);
 * the touching of the warm buffers happens before the timed part, as it does while the process
 * still runs. Wall and CPU (process.cpuUsage) per step; medians.
 *
 *   node --import tsx bench/lastround.ts [--pages 400] [--runs 15] [--baseline /tmp/lastcut/base]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { formatTable, type Row } from './table';
import { arg } from './args';

const PAGE = 4096;
const BASE_VPN = 0x100000;
const PARENT_PAGES = 8192;
const FRAME = 1 << 20;
const log = (m: string): void => { process.stderr.write(`[bench lastround] ${m}\n`); };

type StoreMod = typeof import('../electron/engine/store');
type StreamsMod = typeof import('../electron/engine/store/streams');
type ModelMod = typeof import('../test/store/model');
interface Sample { exportMs: number; exportCpu: number; receiveMs: number; receiveCpu: number; deltaMs: number; deltaCpu: number; version: number; bytes: number }

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timed<T>(f: () => T): { v: T; ms: number; cpu: number } {
  const c0 = cpuMs();
  const t0 = performance.now();
  const v = f();
  return { v, ms: performance.now() - t0, cpu: cpuMs() - c0 };
}

/** One sample in this (child) process: checkout root's modules, this build's path when warm. */
async function child(root: string, pages: number, warm: boolean): Promise<void> {
  const store = (await import(path.resolve(root, 'electron/engine/store/index.ts'))) as StoreMod;
  const streams = (await import(path.resolve(root, 'electron/engine/store/streams.ts'))) as StreamsMod;
  const model = (await import('../test/store/model')) as ModelMod;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-lastround-'));
  try {
    const src = store.openStore(path.join(dir, 'a'));
    const tg = src.upsertTarget({ pid: 1, startTime: '1', exe: '/bench', cmdline: [] });
    const state = model.makeState([model.mapping(BASE_VPN, PARENT_PAGES)]);
    let w = src.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w.setState(state);
    const buf = Buffer.alloc(256 * PAGE);
    for (let p = 0; p < PARENT_PAGES; p += 256) { randomFillSync(buf); w.addPages(BigInt(BASE_VPN + p) << 12n, buf); }
    const parent = w.commit().id;
    w = src.begin({ targetId: tg.id, parentId: parent, mode: 'incremental', dirtyTracking: 'hash', coverage: 'delta' });
    w.setState(state);
    const one = Buffer.alloc(PAGE);
    const stride = Math.max(1, Math.floor(PARENT_PAGES / pages));
    for (let i = 0; i < pages; i++) { randomFillSync(one); w.addPages(BigInt(BASE_VPN + ((i * stride) % PARENT_PAGES)) << 12n, one); }
    const id = w.commit().id;
    // A small round first, through the same calls: code, addon and schema loaded, as a destination
    // that imported the earlier rounds has them (it leaves no megabytes of freed memory to reuse).
    w = src.begin({ targetId: tg.id, parentId: id, mode: 'incremental', dirtyTracking: 'hash', coverage: 'delta' });
    w.setState(state);
    for (let i = 0; i < 4; i++) { randomFillSync(one); w.addPages(BigInt(BASE_VPN + i) << 12n, one); }
    const small = w.commit().id;
    const s0 = src.exportStreamBytes(small, 'one', { continues: 5, maxBytes: 1 << 20, ...(warm ? { checksum: 'hashes' as const } : {}) });
    streams.streamDelta('warm-up', s0.data);
    // Touched before the timed part, as the migration does while the process runs.
    const bytesAbout = pages * (PAGE + 32) + (1 << 20);
    const warmBufs = warm ? [0, 1, 2].map(() => Buffer.allocUnsafe(2 * bytesAbout).fill(0)) : [];
    const opts = { continues: 5, maxBytes: 256 * 2 ** 20, ...(warm ? { checksum: 'hashes' as const, into: warmBufs[0]! } : {}) };
    const x = timed(() => src.exportStreamBytes(id, 'one', opts));
    if (x.v.checkpoints[0] !== id) throw new Error('exported the wrong checkpoint');
    const data = x.v.data;
    const r = timed(() => {
      const into = warm ? warmBufs[1]!.subarray(0, data.length) : Buffer.allocUnsafe(data.length);
      for (let o = 0; o < data.length; o += FRAME) data.copy(into, o, o, Math.min(data.length, o + FRAME));
      return into;
    });
    const d = timed(() => (warm ? streams.streamDelta('last round', r.v, warmBufs[2]!) : streams.streamDelta('last round', r.v)));
    if (d.v.runs.reduce((k, run) => k + (run.data ? run.pages : 0), 0) !== pages) throw new Error('the delta lost pages');
    src.close();
    const s: Sample = { exportMs: x.ms, exportCpu: x.cpu, receiveMs: r.ms, receiveCpu: r.cpu, deltaMs: d.ms, deltaCpu: d.cpu, version: data.readUInt32LE(8), bytes: data.length };
    process.stdout.write(`${JSON.stringify(s)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function main(): void {
  const pages = Number(arg('pages', '400'));
  const runs = Number(arg('runs', '15'));
  const baseline = arg('baseline', '');
  const here = path.resolve(new URL('..', import.meta.url).pathname);
  const builds = [{ name: 'this build', root: here, warm: true }, ...(baseline ? [{ name: `baseline ${baseline}`, root: baseline, warm: false }] : [])];
  const samples = new Map<string, Sample[]>(builds.map((b) => [b.name, []]));
  log(`load before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${pages} pages, ${runs} runs a side, alternating`);
  for (let i = 0; i < runs; i++) {
    for (const b of i % 2 === 0 ? builds : [...builds].reverse()) {
      const p = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', b.root, String(pages), b.warm ? 'warm' : 'fresh'], { encoding: 'utf8' });
      if (p.status !== 0) throw new Error(`${b.name}: ${p.stderr}`);
      const s = JSON.parse(p.stdout.trim().split('\n').pop()!) as Sample;
      samples.get(b.name)!.push(s);
      log(`run ${i + 1} ${b.name}: export ${s.exportMs.toFixed(2)}, receive ${s.receiveMs.toFixed(2)}, validate+delta ${s.deltaMs.toFixed(2)} ms (v${s.version}, ${s.bytes} bytes)`);
    }
  }
  const rows: Row[] = builds.map((b) => {
    const ss = samples.get(b.name)!;
    const m = (f: (s: Sample) => number): string => median(ss.map(f)).toFixed(2);
    return {
      build: b.name, stream: `v${ss[0]!.version}`, 'export ms (cpu)': `${m((s) => s.exportMs)} (${m((s) => s.exportCpu)})`,
      'receive copy ms (cpu)': `${m((s) => s.receiveMs)} (${m((s) => s.receiveCpu)})`, 'validate+delta ms (cpu)': `${m((s) => s.deltaMs)} (${m((s) => s.deltaCpu)})`,
      'sum ms': m((s) => s.exportMs + s.receiveMs + s.deltaMs),
    };
  });
  process.stdout.write(`${formatTable(rows)}\n`);
  log(`load after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

if (process.argv.includes('--child')) {
  const i = process.argv.indexOf('--child');
  void child(process.argv[i + 1]!, Number(process.argv[i + 2]), process.argv[i + 3] === 'warm');
} else main();
