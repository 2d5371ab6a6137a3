// The browser-mode server refuses what it must (wrong Host/Origin, no or wrong token, malformed
// payloads, unknown calls) with the right status, and serves the real engine when asked properly.
// Real server on a real loopback port, real engine worker, temp store dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import WebSocket from 'ws';
import { EngineHost } from '../../electron/engine/host/engine-host';
import { startServer, type RunningServer } from '../../electron/server/server';

let dir: string;
let engine: EngineHost;
let server: RunningServer;

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function http(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method: opts.method ?? 'GET', headers: { Host: `127.0.0.1:${server.port}`, ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const auth = (): Record<string, string> => ({ Authorization: `Bearer ${server.token}` });
const json = { 'Content-Type': 'application/json' };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stasis-server-'));
  const renderer = join(dir, 'renderer');
  mkdirSync(renderer);
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>Stasis</title>');
  engine = new EngineHost(join(dir, 'store'));
  server = await startServer({ engine, rendererDir: renderer });
});

after(async () => {
  await server.close();
  await engine.close();
  rmSync(dir, { recursive: true, force: true });
});

test('binds loopback only and creates the store directory 0700', () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{43}$/);
  assert.equal(statSync(join(dir, 'store')).mode & 0o777, 0o700);
});

test('a call with the token returns the engine status from the worker', async () => {
  const r = await http('/api/call/engine.status', { method: 'POST', headers: { ...auth(), ...json }, body: '{}' });
  assert.equal(r.status, 200);
  const reply = JSON.parse(r.body);
  assert.equal(reply.ok, true);
  assert.equal(reply.value.runtime, 'worker');
  assert.equal(reply.value.store.path, join(dir, 'store'));
});

test('no token: 401', async () => {
  const r = await http('/api/call/engine.status', { method: 'POST', headers: json, body: '{}' });
  assert.equal(r.status, 401);
  assert.equal(JSON.parse(r.body).error.code, 'PERMISSION_DENIED');
  assert.equal((await http('/')).status, 401);
});

test('wrong token: 401 (bearer, cookie and URL)', async () => {
  const wrong = server.token.slice(0, -1) + (server.token.endsWith('A') ? 'B' : 'A');
  assert.equal((await http('/api/call/engine.status', { method: 'POST', headers: { Authorization: `Bearer ${wrong}`, ...json }, body: '{}' })).status, 401);
  assert.equal((await http('/api/call/engine.status', { method: 'POST', headers: { Cookie: `stasis_token=${wrong}`, ...json }, body: '{}' })).status, 401);
  assert.equal((await http(`/?token=${wrong}`)).status, 401);
});

test('the URL token is traded for an HttpOnly SameSite=Strict cookie, then the page is served', async () => {
  const r = await http(`/?token=${server.token}`);
  assert.equal(r.status, 303);
  assert.equal(r.headers.location, '/');
  const cookie = String(r.headers['set-cookie']);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const page = await http('/', { headers: { Cookie: cookie.split(';')[0] } });
  assert.equal(page.status, 200);
  assert.match(page.body, /<title>Stasis<\/title>/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  // The URL token opens the page; it does not authorise API calls.
  assert.equal((await http(`/api/call/engine.status?token=${server.token}`, { method: 'POST', headers: json, body: '{}' })).status, 401);
});

test('foreign Origin: 403, even with the right token', async () => {
  const r = await http('/api/call/engine.status', { method: 'POST', headers: { ...auth(), ...json, Origin: 'http://evil.example' }, body: '{}' });
  assert.equal(r.status, 403);
  const other = await http('/api/call/engine.status', { method: 'POST', headers: { ...auth(), ...json, Origin: `http://127.0.0.1:${server.port + 1}` }, body: '{}' });
  assert.equal(other.status, 403);
});

test('foreign Host (DNS rebinding): 403, even with the right token', async () => {
  const r = await http('/api/call/engine.status', { method: 'POST', headers: { ...auth(), ...json, Host: `evil.example:${server.port}` }, body: '{}' });
  assert.equal(r.status, 403);
});

test('malformed payloads: 400', async () => {
  const bad = async (body: string, headers: Record<string, string> = json): Promise<Res> =>
    http('/api/call/engine.status', { method: 'POST', headers: { ...auth(), ...headers }, body });
  const notJson = await bad('{nope');
  assert.equal(notJson.status, 400);
  assert.equal(JSON.parse(notJson.body).error.code, 'INVALID_INPUT');
  const schema = await bad('{"unexpected": 1}');
  assert.equal(schema.status, 400);
  assert.match(JSON.parse(schema.body).error.message, /unexpected/);
  assert.equal((await bad('[]')).status, 400);
  assert.equal((await bad('{}', { 'Content-Type': 'text/plain' })).status, 400);
});

test('unknown call: 404', async () => {
  const r = await http('/api/call/engine.selfDestruct', { method: 'POST', headers: { ...auth(), ...json }, body: '{}' });
  assert.equal(r.status, 404);
  assert.equal(JSON.parse(r.body).error.code, 'NOT_FOUND');
});

test('the event socket refuses a foreign Origin and a missing token, and accepts the cookie', async () => {
  const open = (headers: Record<string, string>): Promise<number> => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`, { headers });
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.on('error', () => {});
  });
  const origin = `http://127.0.0.1:${server.port}`;
  assert.equal(await open({ Origin: 'http://evil.example', Cookie: `stasis_token=${server.token}` }), 403);
  assert.equal(await open({ Origin: origin }), 401);
  assert.equal(await open({ Origin: origin, Cookie: `stasis_token=${server.token}` }), 101);
});

test('events from the engine reach an authenticated WebSocket client', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`, { headers: { Origin: `http://127.0.0.1:${server.port}`, Cookie: `stasis_token=${server.token}` } });
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  // Other engine events (the scheduler's) may come too: wait for the one this call causes.
  const got = new Promise<{ event: string; payload: unknown }>((resolve) => ws.on('message', (d) => {
    const m = JSON.parse(String(d)) as { event: string; payload: unknown };
    if (m.event === 'store.changed') resolve(m);
  }));
  const r = await http('/api/call/store.reindex', { method: 'POST', headers: { ...auth(), ...json }, body: '{}' });
  assert.equal(r.status, 200, r.body);
  const msg = await got;
  assert.equal(msg.event, 'store.changed');
  ws.close();
});
