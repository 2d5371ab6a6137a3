// Browser-mode file transfers (electron/server/transfers.ts + the /api/export, /api/download/<id>
// and /api/import endpoints): a real checkpoint of a real process is exported into a private slot of
// the store and downloaded once as an attachment; a stream file is uploaded and imported. And what
// must be refused: no token, wrong token, a foreign Origin, path tricks, a second download, an
// oversize upload. Real server on loopback, real engine worker, temp store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { EngineHost } from '../../electron/engine/host/engine-host';
import { startServer, type RunningServer } from '../../electron/server/server';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';

let dir: string;
let store: string;
let engine: EngineHost;
let server: RunningServer;
let target: DetachedProcess;
let checkpointId: number;
const MAX_UPLOAD = 4 * 1024 * 1024;

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function http(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method: opts.method ?? 'GET', headers: { Host: `127.0.0.1:${server.port}`, ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    // An oversize upload may be cut off by the server after it answered: the answer is what counts.
    req.on('error', (err) => { if ((err as NodeJS.ErrnoException).code !== 'EPIPE' && (err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err); });
    req.end(opts.body);
  });
}

const auth = (): Record<string, string> => ({ Authorization: `Bearer ${server.token}` });
const json = { 'Content-Type': 'application/json' };
const transferDir = (): string => join(store, 'transfer');

async function exportIt(kind: string): Promise<{ downloadId: string; filename: string; bytes: number; url: string }> {
  const r = await http('/api/export', { method: 'POST', headers: { ...auth(), ...json }, body: JSON.stringify({ id: checkpointId, kind }) });
  const reply = JSON.parse(r.body.toString('utf8'));
  assert.equal(r.status, 200, r.body.toString('utf8'));
  return reply.value;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stasis-transfers-'));
  store = join(dir, 'store');
  const renderer = join(dir, 'renderer');
  mkdirSync(renderer);
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>Stasis</title>');
  process.env.STASIS_SCHEDULER = '0';
  engine = new EngineHost(store);
  server = await startServer({ engine, rendererDir: renderer, storeDir: store, maxUploadBytes: MAX_UPLOAD });
  const ready = join(dir, 'ready');
  target = spawnDetached([buildFixture('capture-sleeper'), ready]);
  const end = Date.now() + 10_000;
  while (!existsSync(ready)) { if (Date.now() > end) throw new Error('fixture not ready'); await new Promise((r) => setTimeout(r, 20)); }
  const reply = await engine.call('capture.checkpoint', { pid: target.pid, label: 'for transfer' });
  assert.ok(reply.ok, JSON.stringify(reply));
  checkpointId = (reply.value as { id: number }).id;
});

after(async () => {
  target?.kill();
  await server?.close();
  await engine?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('export core: the engine writes into a private slot, the browser downloads it once as an attachment', async () => {
  const e = await exportIt('core');
  assert.match(e.downloadId, /^[A-Za-z0-9_-]{32}$/);
  assert.equal(e.filename, `stasis-${checkpointId}.core`);
  assert.equal(e.url, `/api/download/${e.downloadId}`);
  assert.ok(existsSync(join(transferDir(), e.downloadId, e.filename)));
  // No token, a wrong token, a foreign origin: refused, and the slot is still there for the real user.
  assert.equal((await http(e.url)).status, 401);
  assert.equal((await http(e.url, { headers: { Authorization: 'Bearer nope' } })).status, 401);
  assert.equal((await http(e.url, { headers: { ...auth(), Origin: 'http://evil.example' } })).status, 403);
  assert.equal((await http(`${e.url}?token=${server.token}`)).status, 401, 'the URL token is not accepted for API paths');
  const r = await http(e.url, { headers: { Cookie: `stasis_token=${server.token}` } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-disposition'], `attachment; filename="${e.filename}"`);
  assert.equal(r.headers['content-type'], 'application/octet-stream');
  assert.equal(r.body.length, e.bytes);
  assert.equal(r.body.subarray(0, 4).toString('latin1'), '\x7fELF');
  // Single use: the slot is gone, a second download is 404.
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(existsSync(join(transferDir(), e.downloadId)), false);
  assert.equal((await http(e.url, { headers: auth() })).status, 404);
});

test('export stream, download, upload it back: import by upload creates a new checkpoint and leaves no temp file', async () => {
  const e = await exportIt('flattened');
  assert.equal(e.filename, `stasis-${checkpointId}-flattened.stasis`);
  const file = (await http(e.url, { headers: auth() })).body;
  assert.equal(file.length, e.bytes);
  const r = await http('/api/import', { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/octet-stream' }, body: file });
  assert.equal(r.status, 200, r.body.toString('utf8'));
  const ids = JSON.parse(r.body.toString('utf8')).value.ids as number[];
  assert.equal(ids.length, 1);
  assert.ok(ids[0] > checkpointId);
  assert.deepEqual(readdirSync(transferDir()).filter((n) => n.startsWith('upload-')), []);
});

test('download ids: path tricks and unknown ids are 404, never a file outside a slot', async () => {
  writeFileSync(join(dir, 'secret'), 'TOP-SECRET-CONTENT-42');
  for (const p of ['/api/download/..%2F..%2Fsecret', '/api/download/../../secret', '/api/download/%2e%2e', '/api/download/', `/api/download/${'A'.repeat(32)}`, `/api/download/${'A'.repeat(31)}.`, '/api/download/index.sqlite']) {
    const r = await http(p, { headers: auth() });
    assert.ok(r.status === 404, `${p}: ${r.status}`);
    assert.ok(!r.body.toString('utf8').includes('TOP-SECRET-CONTENT-42'));
  }
  const bad = await http('/api/export', { method: 'POST', headers: { ...auth(), ...json }, body: JSON.stringify({ id: checkpointId, kind: 'core', file: '/etc/passwd' }) });
  assert.equal(bad.status, 400, 'an export request cannot carry a path');
  const missing = await http('/api/export', { method: 'POST', headers: { ...auth(), ...json }, body: JSON.stringify({ id: 999999, kind: 'core' }) });
  assert.equal(missing.status, 404);
  assert.deepEqual(readdirSync(transferDir()), [], 'a failed export leaves no slot');
});

test('import by upload: no token, foreign Origin, wrong type, oversize are refused and leave nothing behind', async () => {
  const body = Buffer.alloc(1024, 1);
  const octet = { 'Content-Type': 'application/octet-stream' };
  assert.equal((await http('/api/import', { method: 'POST', headers: octet, body })).status, 401);
  assert.equal((await http('/api/import', { method: 'POST', headers: { ...octet, Authorization: 'Bearer wrong' }, body })).status, 401);
  assert.equal((await http('/api/import', { method: 'POST', headers: { ...auth(), ...octet, Origin: 'http://evil.example' }, body })).status, 403);
  assert.equal((await http('/api/import', { method: 'POST', headers: { ...auth(), 'Content-Type': 'text/plain' }, body })).status, 400);
  const declared = await http('/api/import', { method: 'POST', headers: { ...auth(), ...octet }, body: Buffer.alloc(MAX_UPLOAD + 1) });
  assert.equal(declared.status, 413);
  // Without a Content-Length (chunked), the limit is enforced while streaming.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path: '/api/import', method: 'POST', headers: { Host: `127.0.0.1:${server.port}`, ...auth(), ...octet, 'Transfer-Encoding': 'chunked' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', (err) => { if ((err as NodeJS.ErrnoException).code !== 'EPIPE' && (err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err); });
    const chunk = Buffer.alloc(256 * 1024, 2);
    let sent = 0;
    const pump = (): void => { while (sent <= MAX_UPLOAD + chunk.length) { sent += chunk.length; if (!req.write(chunk)) { req.once('drain', pump); return; } } req.end(); };
    pump();
  });
  assert.equal(chunked, 413);
  // Garbage that fits is written, handed to the engine, refused by it, and deleted.
  const garbage = await http('/api/import', { method: 'POST', headers: { ...auth(), ...octet }, body });
  assert.notEqual(garbage.status, 200);
  assert.equal(JSON.parse(garbage.body.toString('utf8')).ok, false);
  await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(readdirSync(transferDir()).filter((n) => n.startsWith('upload-')), []);
});
