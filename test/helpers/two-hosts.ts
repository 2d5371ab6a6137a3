/**
 * Two Stasis "machines" for transfer tests: network namespaces made by the test (a veth pair,
 * 10.99.N.1/30 for the sender's side A and .2 for the receiver's side B; 127.0.0.1 when `ip netns`
 * is not allowed), bin/stasis.js run or started in either, a `receive --listen` in B with its
 * address and token, and a relay in A (test/helpers/cut-proxy.mjs) that counts the bytes on the
 * wire and can cut, damage or stall the first connection, or listen on a port given (to come back
 * on it after being stopped: a receiver that went down and up again).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../electron/engine/store';
import { segmentName } from '../../electron/engine/store/format';
import { materializeToMap, type View } from '../store/model';
import { waitFor } from '../restore/helpers';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const bin = path.join(root, 'bin', 'stasis.js');
const proxyScript = path.join(root, 'test', 'helpers', 'cut-proxy.mjs');

export interface Run { code: number; stdout: string; stderr: string }
export interface Proc { child: ChildProcess; out: () => string; err: () => string; done: Promise<Run> }
export interface Receiver extends Proc { addr: string; token: string }
export interface Relay extends Proc { addr: string; port: number; up: () => number; connUp: (i: number) => number; conns: () => number }

export interface TwoHosts {
  nsA: string;
  nsB: string;
  /** True when the namespaces were made (else everything runs over 127.0.0.1). */
  readonly netns: boolean;
  recvHost(): string;
  /** Makes the namespaces (call in before()). */
  setup(): void;
  /** Deletes them (call in after()). */
  teardown(): void;
  run(store: string, args: string[], ns?: string): Promise<Run>;
  start(cmd: string[], ns: string | undefined): Proc;
  receiver(store: string, extra?: string[]): Promise<Receiver>;
  relay(to: string, extra?: string[]): Promise<Relay>;
}

/** prefix: two letters naming the test file (the namespaces and the veth are named from it and the pid). */
export function twoHosts(prefix: string): TwoHosts {
  const tag = `${prefix}${process.pid % 100000}`;
  const nsA = `${tag}a`;
  const nsB = `${tag}b`;
  const octet = 1 + ((process.pid + prefix.charCodeAt(0)) % 250);
  let netns = false;
  const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: 'ignore', timeout: 10_000 }); };
  const inNs = (ns: string | undefined, argv: string[]): [string, string[]] => (netns && ns ? ['ip', ['netns', 'exec', ns, ...argv]] : [argv[0]!, argv.slice(1)]);
  const recvHost = (): string => (netns ? `10.99.${octet}.2` : '127.0.0.1');

  const start = (cmd: string[], ns: string | undefined): Proc => {
    const [c, argv] = inNs(ns, cmd);
    const child = spawn(c, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, stdout: out, stderr: err })));
    const killer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    void done.then(() => clearTimeout(killer));
    return { child, out: () => out, err: () => err, done };
  };

  return {
    nsA, nsB,
    get netns() { return netns; },
    recvHost,
    setup() {
      try {
        ip('netns', 'add', nsA);
        ip('netns', 'add', nsB);
        ip('link', 'add', `${tag}x`, 'type', 'veth', 'peer', 'name', `${tag}y`);
        ip('link', 'set', `${tag}x`, 'netns', nsA);
        ip('link', 'set', `${tag}y`, 'netns', nsB);
        ip('-n', nsA, 'addr', 'add', `10.99.${octet}.1/30`, 'dev', `${tag}x`);
        ip('-n', nsB, 'addr', 'add', `10.99.${octet}.2/30`, 'dev', `${tag}y`);
        for (const [ns, dev] of [[nsA, `${tag}x`], [nsB, `${tag}y`]] as const) { ip('-n', ns, 'link', 'set', dev, 'up'); ip('-n', ns, 'link', 'set', 'lo', 'up'); }
        netns = true;
      } catch (_e) {
        for (const ns of [nsA, nsB]) { try { ip('netns', 'del', ns); } catch (_x) { /* not created */ } }
        try { ip('link', 'del', `${tag}x`); } catch (_x) { /* not created */ }
        process.stderr.write('# ip netns is not allowed here: the transfers run over 127.0.0.1\n');
      }
    },
    teardown() {
      if (netns) for (const ns of [nsA, nsB]) { try { ip('netns', 'del', ns); } catch (_x) { /* gone */ } }
    },
    run(store, args, ns = nsA) {
      return new Promise((resolve) => {
        const [cmd, argv] = inNs(ns, [process.execPath, bin, '--store', store, ...args]);
        execFile(cmd, argv, { timeout: 120_000 }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
        });
      });
    },
    start,
    async receiver(store, extra = []) {
      const p = start([process.execPath, bin, '--store', store, '--json', 'receive', '--listen', `${recvHost()}:0`, ...extra], nsB);
      await waitFor('the receiver to listen', () => /Pairing token: \S+\n/.test(p.err()) || p.child.exitCode !== null, 30_000);
      const a = /Listening on (\S+)\n/.exec(p.err());
      const k = /Pairing token: (\S+)\n/.exec(p.err());
      assert.ok(a && k, p.err());
      return { ...p, addr: a[1]!, token: k[1]! };
    },
    async relay(to, extra = []) {
      const [h, port] = to.split(':');
      const p = start([process.execPath, proxyScript, '127.0.0.1', h!, port!, ...extra], nsA);
      await waitFor('the relay to listen', () => /listening \d+/.test(p.out()) || p.child.exitCode !== null, 10_000);
      const lines = (): number[][] => [...p.out().matchAll(/conn (\d+) up (\d+) down (\d+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
      const listening = /listening (\d+)/.exec(p.out());
      assert.ok(listening, `the relay did not start: ${p.err()}`);
      return { ...p, addr: `127.0.0.1:${listening[1]}`, port: Number(listening[1]), up: () => lines().reduce((n, l) => n + l[1]!, 0), connUp: (i) => lines().find((l) => l[0] === i)?.[1] ?? 0, conns: () => lines().length };
    },
  };
}

/**
 * Bytes of pages a receiver importing as they arrive has written so far: its segments being
 * written (STORE/segments/*.tmp), the one copy of each arrived page until the transfer imports.
 */
export function arrivingBytes(store: string): number {
  const d = path.join(store, 'segments');
  if (!fs.existsSync(d)) return 0;
  let n = 0;
  for (const f of fs.readdirSync(d)) if (f.endsWith('.tmp')) n += fs.statSync(path.join(d, f), { throwIfNoEntry: false })?.size ?? 0;
  return n;
}

/** The segments a broken-off transfer kept in the store for its resend (STORE/.sync/<transfer>/kept), as paths. */
export function keptSegments(store: string): string[] {
  const d = path.join(store, '.sync');
  const out: string[] = [];
  for (const k of fs.existsSync(d) ? fs.readdirSync(d) : []) {
    const list = path.join(d, k, 'kept');
    if (!fs.existsSync(list)) continue;
    for (const id of JSON.parse(fs.readFileSync(list, 'utf8')) as number[]) out.push(path.join(store, 'segments', segmentName(id)));
  }
  return out;
}

export function storeIds(store: string): number[] {
  if (!fs.existsSync(path.join(store, 'index.sqlite'))) return [];
  const s = openStore(store);
  try { return s.list().map((c) => c.id); } finally { s.close(); }
}

export function storeView(store: string, id: number): View {
  const s = openStore(store);
  try { return materializeToMap(s, id); } finally { s.close(); }
}
