/**
 * Replication benchmark: bytes on the wire and time of `stasis send --to` (negotiated by page
 * hash) against the plain stream (`send --to --flatten`, what crossed before negotiation), between
 * two CLI processes and two stores on this machine over TLS on 127.0.0.1. A synthetic process of
 * SIZE MiB of random pages (checkpoint 1) and an incremental with PCT% of them changed (2); a
 * second process holding HELD% of checkpoint 1's pages (3) stands for what the receiver may
 * already hold elsewhere. Cases, each into a fresh receiving store unless said:
 *   plain        send 1 --flatten (the whole stream; no negotiation)
 *   empty        send 1, the receiver holds nothing
 *   held         send 1, the receiver holds checkpoint 3 (HELD% of the pages)
 *   continuation send 2 after 1 (same store): only the changed pages
 *   again        send 2 again: the receiver holds it, nothing sent
 * wire/lacked = bytes the sender wrote / 4096 x pages the receiver lacked. Prints a table (medians
 * of RUNS) and one JSON document. No CRIU column: CRIU has no transfer of its own.
 *
 *   node --import tsx bench/transfer.ts [--size-mb 256] [--pct 1] [--held 90] [--runs 3] [--baseline BIN]
 * --baseline: another build's bin/stasis.js (e.g. a checkout from before a change): its `send 1
 * --to` into an empty receiver (its own `receive`) runs beside this one's in each run ('empty
 * (baseline)'). 'full send MiB/s' = the stream's pages over the send's wall time less the CLI's
 * start (`stasis --version` of the same build, median of 3 in each run), beside two floors measured
 * in each run (medians): the TLS link's own throughput (bench/tls-link.ts: SIZE MiB between two
 * node processes over the same link and cipher on 127.0.0.1) and the durable-write speed of the
 * disk the stores are on (bench/floors); 'slower floor / full send' is issue 14's ratio (target
 * 1.5). 'CPU s send / receive': the sending CLI's CPU (its wait status) and the receiver's
 * (/proc/PID/stat) over the send, medians; 'receiver disk writes / lacked': the receiver's
 * /proc/PID/io write_bytes over the send per byte of pages it lacked (its spool counts, even
 * when deleted before writeback).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../electron/engine/store';
import { mapping, randomPage, rng, writeComplete, type View } from '../test/store/model';
import { formatTable, type Row } from './table';
import { durableWriteSecs } from './floors';
import { arg } from './args';

const sizeMb = Number(arg('size-mb', '256'));
const pct = Number(arg('pct', '1'));
const heldPct = Number(arg('held', '90'));
const runs = Number(arg('runs', '3'));
const baseline = arg('baseline', '');
const bin = join(new URL('../', import.meta.url).pathname, 'bin/stasis.js');
const log = (m: string): void => { process.stderr.write(`[bench] ${m}\n`); };
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

const dir = mkdtempSync(join(tmpdir(), 'stasis-bench-transfer-'));
const src = join(dir, 'src');
const pages = sizeMb * 256;
const changed = Math.max(1, Math.round((pages * pct) / 100));
const held = Math.round((pages * heldPct) / 100);

function buildSource(): void {
  const s = openStore(src);
  const r = rng(7);
  const t = s.upsertTarget({ pid: 31, startTime: '31', exe: '/bin/b', cmdline: ['b'] });
  const v: View = new Map();
  for (let i = 0; i < pages; i++) v.set(0x1000 + i, randomPage(r));
  writeComplete(s, t.id, null, v, [mapping(0x1000, pages, '/b')]);
  for (let i = 0; i < changed; i++) v.set(0x1000 + Math.floor((i * pages) / changed), randomPage(r));
  writeComplete(s, t.id, 1, v, [mapping(0x1000, pages, '/b')]);
  const o = s.upsertTarget({ pid: 32, startTime: '32', exe: '/bin/c', cmdline: ['c'] });
  const part: View = new Map();
  const r1 = rng(7);
  for (let i = 0; i < held; i++) part.set(0x1000 + i, randomPage(r1));
  writeComplete(s, o.id, null, part, [mapping(0x1000, held, '/c')]);
  s.close();
}

const TICK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
/** CPU ms of a process from /proc/PID/stat: its own (utime + stime), or its waited-for children's (cutime + cstime). */
function cpuMs(pid: number | 'self', children = false): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const v = f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number);
  // Fields 14-17 (utime stime cutime cstime) are at 11-14 after the state field (3).
  return ((children ? v[13]! + v[14]! : v[11]! + v[12]!) * TICK_MS);
}
/** Bytes a process has caused to be written to disk (/proc/PID/io write_bytes). */
function writeBytes(pid: number): number {
  return Number(/^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
}

function cli(store: string, args: string[], which = bin): { out: string; ms: number; cpuMs: number } {
  const t0 = performance.now();
  const c0 = cpuMs('self', true);
  const r = spawnSync(process.execPath, [which, '--store', store, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`stasis ${args.join(' ')}: ${r.stderr}`);
  return { out: r.stdout, ms: performance.now() - t0, cpuMs: cpuMs('self', true) - c0 };
}

/** A `receive --listen --keep` on a store; resolves with its address and token, and a stop(). */
async function receiver(store: string, which = bin): Promise<{ addr: string; token: string; pid: number; stop: () => Promise<void> }> {
  const p = spawn(process.execPath, [which, '--store', store, 'receive', '--listen', '127.0.0.1:0', '--keep'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const closed = new Promise<void>((resolve) => p.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    p.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (/Pairing token: \S+\n/.test(err)) resolve(); });
    void closed.then(() => reject(new Error(err)));
  });
  return { addr: /Listening on (\S+)/.exec(err)![1]!, token: /Pairing token: (\S+)/.exec(err)![1]!, pid: p.pid!, stop: async () => { p.kill('SIGINT'); await closed; } };
}

interface Sample { wire: number; lacked: number; ms: number; sendCpuMs?: number; recvCpuMs?: number; recvWritten?: number }
const samples = new Map<string, Sample[]>();
const add = (k: string, s: Sample): void => { samples.set(k, [...(samples.get(k) ?? []), s]); };
/** Wall ms of a CLI start (median of 3): what each send's time includes besides the transfer. */
const startMs = new Map<string, number[]>();
function measureStart(which: string): void {
  const xs = [0, 1, 2].map(() => cli(join(dir, 'start'), ['--version'], which).ms);
  startMs.set(which, [...(startMs.get(which) ?? []), median(xs)]);
}

/** The TLS link's floor (bench/tls-link.ts, two processes). */
function tlsLink(): { mibps: number; readerCpuMs: number; writerCpuMs: number } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL('tls-link.ts', import.meta.url).pathname, '--size-mb', String(sizeMb)], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`TLS link measurement failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { mibps: number; readerCpuMs: number; writerCpuMs: number };
}
const floors: { link: number; linkCpu: string; disk: number }[] = [];

async function main(): Promise<void> {
  log(`source: ${sizeMb} MiB (${pages} pages), ${changed} changed in #2, ${held} held by #3`);
  buildSource();
  const seed = join(dir, 'seed.stream');
  cli(src, ['export', '3', '-o', seed]);
  for (let run = 1; run <= runs; run++) {
    const link = tlsLink();
    floors.push({ link: link.mibps, linkCpu: `${(link.writerCpuMs / 1000).toFixed(2)} + ${(link.readerCpuMs / 1000).toFixed(2)}`, disk: sizeMb / durableWriteSecs(dir, sizeMb * 2 ** 20) });
    measureStart(bin);
    if (baseline) {
      measureStart(baseline);
      const dst = join(dir, `dst-base-${run}`);
      const l = await receiver(dst, baseline);
      try {
        const rc = cpuMs(l.pid), rw = writeBytes(l.pid);
        const r = cli(src, ['--json', 'send', '1', '--to', l.addr, '--token', l.token], baseline);
        add('empty (baseline)', { wire: (JSON.parse(r.out) as { bytes: number }).bytes, lacked: pages * 4096, ms: r.ms, sendCpuMs: r.cpuMs, recvCpuMs: cpuMs(l.pid) - rc, recvWritten: writeBytes(l.pid) - rw });
      } finally {
        await l.stop();
        rmSync(dst, { recursive: true, force: true });
      }
    }
    for (const c of ['plain', 'empty', 'held'] as const) {
      const dst = join(dir, `dst-${c}-${run}`);
      if (c === 'held') cli(dst, ['import', seed]);
      const l = await receiver(dst);
      try {
        const rc = cpuMs(l.pid), rw = writeBytes(l.pid);
        const r = cli(src, ['--json', 'send', '1', '--to', l.addr, '--token', l.token, ...(c === 'plain' ? ['--flatten'] : [])]);
        const j = JSON.parse(r.out) as { bytes: number; pagesSent?: number };
        add(c, { wire: j.bytes, lacked: (c === 'held' ? pages - held : pages) * 4096, ms: r.ms, sendCpuMs: r.cpuMs, recvCpuMs: cpuMs(l.pid) - rc, recvWritten: writeBytes(l.pid) - rw });
        if (c === 'empty') {
          const b = cli(src, ['--json', 'send', '2', '--to', l.addr, '--token', l.token]);
          add('continuation', { wire: (JSON.parse(b.out) as { bytes: number }).bytes, lacked: changed * 4096, ms: b.ms });
          const a = cli(src, ['--json', 'send', '2', '--to', l.addr, '--token', l.token]);
          add('again', { wire: (JSON.parse(a.out) as { bytes: number }).bytes, lacked: 0, ms: a.ms });
        }
      } finally {
        await l.stop();
        rmSync(dst, { recursive: true, force: true });
      }
    }
    log(`run ${run} done`);
  }
  const rows: Row[] = [...samples].map(([k, xs]) => {
    const wire = median(xs.map((x) => x.wire));
    const lacked = xs[0]!.lacked;
    const start = median(startMs.get(k.includes('baseline') ? baseline : bin) ?? [0]);
    const isFull = k === 'empty' || k === 'empty (baseline)';
    const full = isFull ? sizeMb / ((median(xs.map((x) => x.ms)) - start) / 1000) : 0;
    const slower = Math.min(median(floors.map((f) => f.link)), median(floors.map((f) => f.disk)));
    return {
      case: k, 'lacked MiB': (lacked / 2 ** 20).toFixed(2), 'wire MiB': (wire / 2 ** 20).toFixed(2), 'wire/lacked': lacked ? (wire / lacked).toFixed(3) : '-',
      'send s (CLI, incl. export + import)': (median(xs.map((x) => x.ms)) / 1000).toFixed(2), 'full send MiB/s': isFull ? full.toFixed(0) : '-',
      'slower floor / full send': isFull ? (slower / full).toFixed(2) : '-',
      'CPU s send / receive': xs[0]!.sendCpuMs === undefined ? '-' : `${(median(xs.map((x) => x.sendCpuMs!)) / 1000).toFixed(2)} / ${(median(xs.map((x) => x.recvCpuMs!)) / 1000).toFixed(2)}`,
      'receiver disk writes / lacked': xs[0]!.recvWritten === undefined || !lacked ? '-' : (median(xs.map((x) => x.recvWritten!)) / lacked).toFixed(2),
    };
  });
  process.stdout.write(`${formatTable(rows, true)}\n(floors, median of ${floors.length}: TLS link ${median(floors.map((f) => f.link)).toFixed(0)} MiB/s, disk ${median(floors.map((f) => f.disk)).toFixed(0)} MiB/s; per run: ${floors.map((f) => `link ${f.link.toFixed(0)} (cpu s ${f.linkCpu}), disk ${f.disk.toFixed(0)}`).join('; ')})\n(CLI start ms: ${[...startMs].map(([b, xs]) => `${b === bin ? 'this' : 'baseline'} ${median(xs).toFixed(0)}`).join(', ')}; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})\n`);
  process.stdout.write(`${JSON.stringify({ sizeMb, pct, heldPct, runs, samples: Object.fromEntries(samples), floors })}\n`);
}

main().finally(() => rmSync(dir, { recursive: true, force: true })).catch((e: unknown) => { log((e as Error).message); process.exitCode = 1; });
