/**
 * CPU of a stream's two ends in one process, per side: a full checkpoint of SIZE MiB of random
 * pages (no zero or duplicate page: every page travels) exported with Store.openExport (chunks
 * kept in memory) and imported into an empty store with Store.beginImport, chunk by chunk as the
 * wire would deliver them. What a full send's two processes spend, without the link.
 *
 *   node --import tsx bench/stream-cpu.ts [--size-mb 256] [--runs 3] [--baseline DIR]
 * --baseline: another checkout (its electron/engine/store), run alternately with this one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { formatTable, type Row } from './table';
import { arg } from './args';

const sizeMb = Number(arg('size-mb', '256'));
const runs = Number(arg('runs', '3'));
const baseline = arg('baseline', '');
const PAGE = 4096;
const BASE_VPN = 0x100000;
const log = (m: string): void => { process.stderr.write(`[bench stream-cpu] ${m}\n`); };

type StoreMod = typeof import('../electron/engine/store');
type ModelMod = typeof import('../test/store/model');

interface Sample { exportCpu: number; exportWall: number; importCpu: number; importWall: number }

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function oneRun(mod: StoreMod, model: ModelMod): Sample {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-streamcpu-'));
  try {
    const src = mod.openStore(path.join(dir, 'a'));
    const pages = sizeMb * 256;
    const tg = src.upsertTarget({ pid: 1, startTime: '1', exe: '/bench', cmdline: [] });
    const w = src.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w.setState(model.makeState([model.mapping(BASE_VPN, pages)]));
    const buf = Buffer.alloc(256 * PAGE);
    for (let p = 0; p < pages; p += 256) {
      randomFillSync(buf);
      w.addPages(BigInt(BASE_VPN + p) << 12n, buf);
    }
    const id = w.commit().id;
    const dst = mod.openStore(path.join(dir, 'b'));
    let c0 = cpuMs();
    let t0 = performance.now();
    const x = src.openExport(id, 'one');
    const chunks: Buffer[] = [];
    for (const c of x.chunks()) chunks.push(c);
    const exportCpu = cpuMs() - c0;
    const exportWall = performance.now() - t0;
    c0 = cpuMs();
    t0 = performance.now();
    const imp = dst.beginImport(x.bytes, { name: 'bench' });
    for (const c of chunks) imp.push(c);
    const ids = imp.finish().ids;
    const importCpu = cpuMs() - c0;
    const importWall = performance.now() - t0;
    if (ids.length !== 1) throw new Error('nothing imported');
    src.close();
    dst.close();
    return { exportCpu, exportWall, importCpu, importWall };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const model = await import('../test/store/model');
  const builds: { name: string; mod: StoreMod }[] = [{ name: 'this', mod: await import('../electron/engine/store') }];
  if (baseline) builds.push({ name: 'baseline', mod: (await import(path.resolve(baseline, 'electron/engine/store/index.ts'))) as StoreMod });
  const samples = new Map<string, Sample[]>(builds.map((b) => [b.name, []]));
  log(`uptime: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  for (let r = 0; r < runs; r++) {
    const order = r % 2 === 0 ? builds : [...builds].reverse();
    for (const b of order) {
      const s = oneRun(b.mod, model);
      samples.get(b.name)!.push(s);
      log(`run ${r + 1} ${b.name}: export ${s.exportCpu.toFixed(0)} ms cpu / ${s.exportWall.toFixed(0)} ms wall, import ${s.importCpu.toFixed(0)} / ${s.importWall.toFixed(0)}`);
    }
  }
  const rows: Row[] = builds.map((b) => {
    const ss = samples.get(b.name)!;
    return {
      build: b.name, 'MiB': sizeMb,
      'export cpu ms': median(ss.map((s) => s.exportCpu)).toFixed(0), 'export wall ms': median(ss.map((s) => s.exportWall)).toFixed(0),
      'import cpu ms': median(ss.map((s) => s.importCpu)).toFixed(0), 'import wall ms': median(ss.map((s) => s.importWall)).toFixed(0),
      runs: ss.map((s) => `${s.exportCpu.toFixed(0)}+${s.importCpu.toFixed(0)}`).join(', '),
    };
  });
  process.stdout.write(`${formatTable(rows)}\n`);
  log(`uptime after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}
void main();
