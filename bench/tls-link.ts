/**
 * The TLS link's own throughput, for bench/transfer.ts's floor: SIZE MiB of random bytes from one
 * node process into another over the link `send --to` uses (electron/engine/transfer/tls-link.ts:
 * same cipher, PSK from a pairing token) on 127.0.0.1, from the reader's first byte to its last,
 * with each side's CPU. Two processes, as a send and its receiver are.
 *
 *   node --import tsx bench/tls-link.ts --size-mb 256       (prints one JSON line)
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, listen, listeningAddress, newToken, parseAddress, tokenKey } from '../electron/engine/transfer/tls-link';
import { arg } from './args';

const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** The writing side (a child process): SIZE MiB into the listener at addr, then its CPU on stdout. */
async function writer(addr: string, token: string, sizeMb: number): Promise<void> {
  const sock = await connect(parseAddress(addr, false), tokenKey(token));
  const chunk = randomBytes(1 << 20);
  const c0 = cpuMs();
  for (let i = 0; i < sizeMb; i++) {
    if (!sock.write(chunk)) await new Promise((resolve) => sock.once('drain', resolve));
  }
  await new Promise<void>((resolve) => sock.end(resolve));
  process.stdout.write(JSON.stringify({ cpuMs: cpuMs() - c0 }));
}

/** The reading side (this process): listens, starts the writer, counts the bytes. */
async function reader(sizeMb: number): Promise<void> {
  const { token, key } = newToken();
  let n = 0;
  let t0 = 0;
  let c0 = 0;
  const got = new Promise<{ ms: number; cpuMs: number }>((resolve) => {
    void listen({ host: '127.0.0.1', port: 0 }, key, (s) => {
      s.on('data', (d: Buffer) => { if (!n) { t0 = performance.now(); c0 = cpuMs(); } n += d.length; });
      s.on('end', () => { resolve({ ms: performance.now() - t0, cpuMs: cpuMs() - c0 }); s.end(); });
    }, (why) => { throw new Error(why); }).then((server) => {
      const child = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--write', listeningAddress(server), '--token', token, '--size-mb', String(sizeMb)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.on('close', () => { server.close(); writerCpu = (JSON.parse(out || '{"cpuMs":null}') as { cpuMs: number | null }).cpuMs; doneWriter(); });
    });
  });
  let writerCpu: number | null = null;
  let doneWriter!: () => void;
  const writerDone = new Promise<void>((resolve) => { doneWriter = resolve; });
  const r = await got;
  await writerDone;
  if (n !== sizeMb * 2 ** 20) throw new Error(`the link carried ${n} bytes`);
  process.stdout.write(`${JSON.stringify({ mibps: sizeMb / (r.ms / 1000), readerCpuMs: r.cpuMs, writerCpuMs: writerCpu })}\n`);
}

const sizeMb = Number(arg('size-mb', '256'));
const addr = arg('write', '');
(addr ? writer(addr, arg('token', ''), sizeMb) : reader(sizeMb)).catch((e: unknown) => { process.stderr.write(`${(e as Error).message}\n`); process.exitCode = 1; });
