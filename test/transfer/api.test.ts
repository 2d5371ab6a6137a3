/**
 * The transfer calls as every client reaches them (api/invoke: the contract's zod schemas, then the
 * handlers), with real stores, a real TLS listener on 127.0.0.1 and a real counter process: bad
 * addresses and tokens are clear errors that never echo the token; the receiver gives its token
 * only in the reply (no event carries it), refuses a second listener, survives a wrong token and
 * imports a sent checkpoint; a migration cancelled mid-round leaves the process running here and
 * the destination with nothing.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { invoke } from '../../electron/api/invoke';
import type { HandlerContext } from '../../electron/api/context';
import { openStore, type Store } from '../../electron/engine/store';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { fileLines, tempDir, waitFor } from '../restore/helpers';
import { mapping, randomPage, rng, writeComplete, type View } from '../store/model';
import type { StasisErrorData } from '../../shared/errors';

const dir = tempDir('stasis-transfer-api-');
const stores: Store[] = [];
const GOOD = `stasis1-${Buffer.alloc(32, 3).toString('base64url')}`;

function ctx(name: string, extra: Partial<HandlerContext> = {}): HandlerContext & { events: { event: string; payload: unknown }[] } {
  const events: { event: string; payload: unknown }[] = [];
  let store: Store | null = null;
  const storeDir = join(dir, name);
  return {
    storeDir,
    store: () => { if (!store) { store = openStore(storeDir); stores.push(store); } return store; },
    emit: (event, payload) => events.push({ event, payload }),
    events,
    ...extra,
  };
}

async function fails(name: string, input: unknown, c: HandlerContext): Promise<StasisErrorData> {
  const r = await invoke(name, input, c);
  assert.equal(r.ok, false, `${name} ${JSON.stringify(input)} should fail`);
  return (r as { ok: false; error: StasisErrorData }).error;
}

async function ok<T>(name: string, input: unknown, c: HandlerContext): Promise<T> {
  const r = await invoke(name, input, c);
  if (!r.ok) assert.fail(`${name}: ${r.error.code} ${r.error.message}`);
  return r.value as T;
}

after(async () => {
  await invoke('transfer.stop', {}, ctx('stop'));
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
});

test('bad addresses are INVALID_INPUT naming the field, before anything listens or connects', async () => {
  const c = ctx('v');
  for (const address of ['nohost', '10.0.0.5', '10.0.0.5:70000', 'a:b:c', ':7411', 'host name:7411', '[zz]:1']) {
    const e = await fails('transfer.listen', { address }, c);
    assert.equal(e.code, 'INVALID_INPUT', address);
    assert.match(e.message, /^Invalid input for transfer\.listen: address: /, address);
  }
  const st = await ok<{ listening: boolean }>('transfer.receiver', {}, c);
  assert.equal(st.listening, false);
  // Port 0 means "any free port" only where listening.
  for (const name of ['transfer.send', 'migrate.run']) {
    const input = name === 'transfer.send' ? { id: 1, to: '127.0.0.1:0', token: GOOD } : { pid: 1, to: '127.0.0.1:0', token: GOOD };
    const e = await fails(name, input, c);
    assert.equal(e.code, 'INVALID_INPUT');
    assert.match(e.message, /to: the port must be 1 to 65535/);
  }
});

test('bad tokens are INVALID_INPUT that never repeat the token; other bad input is named too', async () => {
  const c = ctx('t');
  const secretish = 'stasis1-SECRETSECRETSECRETSECRETSECRETSECRETSECRET';
  for (const token of ['', 'nope', secretish, `${GOOD}x`, GOOD.replace('stasis1-', 'stasis2-')]) {
    for (const name of ['transfer.send', 'migrate.run']) {
      const input = name === 'transfer.send' ? { id: 1, to: '127.0.0.1:7411', token } : { pid: 1, to: '127.0.0.1:7411', token };
      const e = await fails(name, input, c);
      assert.equal(e.code, 'INVALID_INPUT', `${name} ${token}`);
      assert.match(e.message, /token: paste the whole pairing token/);
      if (token.length > 8) assert.ok(!e.message.includes(token.slice(8)), `the error repeats the token: ${e.message}`);
    }
  }
  assert.match((await fails('migrate.run', { pid: -3, to: '127.0.0.1:7411', token: GOOD }, c)).message, /pid: /);
  assert.match((await fails('migrate.run', { pid: 3, to: '127.0.0.1:7411', token: GOOD, maxRounds: 0 }, c)).message, /maxRounds: /);
  assert.match((await fails('transfer.send', { id: 1, to: '127.0.0.1:7411', token: GOOD, how: 'all' }, c)).message, /how: /);
  assert.match((await fails('transfer.send', { id: 1, to: '127.0.0.1:7411', token: GOOD, extra: 1 }, c)).message, /extra/);
  // Nobody listens there: a clear error, nothing sent.
  const src = ctx('t-src');
  const view: View = new Map([[0x900, randomPage(rng(2))]]);
  const tg = src.store().upsertTarget({ pid: 12, startTime: '12', exe: '/bin/z', cmdline: ['z'] });
  const id = writeComplete(src.store(), tg.id, null, view, [mapping(0x900, 1, '/z')]);
  const e = await fails('transfer.send', { id, to: '127.0.0.1:1', token: GOOD }, src);
  assert.match(e.message, /Cannot send to 127\.0\.0\.1:1: .*Nothing was sent/);
});

test('listen: the token only in the reply, a second listener refused, a wrong token survived, a sent checkpoint imported, then stopped', async () => {
  const dst = ctx('l-dst');
  const src = ctx('l-src');
  const r = rng(9);
  const view: View = new Map();
  for (let i = 0; i < 40; i++) view.set(0x700 + i, randomPage(r));
  const tg = src.store().upsertTarget({ pid: 13, startTime: '13', exe: '/bin/w', cmdline: ['w'] });
  const id = writeComplete(src.store(), tg.id, null, view, [mapping(0x700, 40, '/w')]);

  const l = await ok<{ listening: boolean; address: string; token: string }>('transfer.listen', { address: '127.0.0.1:0' }, dst);
  assert.equal(l.listening, true);
  assert.match(l.address, /^127\.0\.0\.1:[1-9]\d*$/);
  assert.match(l.token, /^stasis1-[A-Za-z0-9_-]{43}$/);
  assert.equal((await fails('transfer.listen', { address: '127.0.0.1:0' }, dst)).code, 'CONFLICT');
  const status = await ok<Record<string, unknown>>('transfer.receiver', {}, dst);
  assert.equal(JSON.stringify(status).includes(l.token), false);

  const wrong = await fails('transfer.send', { id, to: l.address, token: GOOD }, src);
  assert.match(wrong.message, /refused the pairing token/);
  const sent = await ok<{ checkpoints: number[]; received: number[]; bytes: number }>('transfer.send', { id, to: l.address, token: l.token }, { ...src, callId: 'send-1' });
  assert.deepEqual(sent.checkpoints, [id]);
  assert.equal(sent.received.length, 1);
  const progress = src.events.filter((e) => e.event === 'op.progress').map((e) => e.payload as { op: string; done: number; total: number });
  assert.ok(progress.length >= 1 && progress.every((p) => p.op === 'send'));
  assert.deepEqual(progress.at(-1)!.done, sent.bytes);
  assert.deepEqual(dst.store().list().map((c) => c.id), sent.received);

  await waitFor('the arrival', () => dst.events.some((e) => e.event === 'transfer.receiver' && (e.payload as { arrivals: unknown[] }).arrivals.length > 0));
  const st = await ok<{ listening: boolean; arrivals: { kind: string; checkpointIds: number[] }[] }>('transfer.receiver', {}, dst);
  assert.equal(st.listening, false, 'the token is used up');
  assert.deepEqual(st.arrivals[0], { ...st.arrivals[0], kind: 'checkpoints', checkpointIds: sent.received });
  assert.equal(JSON.stringify(dst.events).includes(l.token), false, 'no event carries the token');
  const again = await fails('transfer.send', { id, to: l.address, token: l.token }, src);
  assert.match(again.message, /Cannot send to/);

  const l2 = await ok<{ address: string; token: string }>('transfer.listen', { address: '127.0.0.1:0' }, dst);
  assert.notEqual(l2.token, l.token);
  assert.equal((await ok<{ listening: boolean }>('transfer.stop', {}, dst)).listening, false);
  assert.match((await fails('transfer.send', { id, to: l2.address, token: l2.token }, src)).message, /Cannot send to/);
});

test('migrate.run: a dry run keeps the listener for the real run; a cancel mid-round leaves the process running here and nothing there', async () => {
  const out = join(dir, 'out.txt');
  const t = spawnDetached([buildFixture('migrate-counter'), out, '16', '200'], { cwd: dir });
  try {
    await waitFor('the counter to start', () => fileLines(out).length > 20, 10_000);
    const dst = ctx('m-dst');
    const l = await ok<{ address: string; token: string }>('transfer.listen', { address: '127.0.0.1:0' }, dst);
    const dry = await ok<{ dryRun: boolean; preflight: { ok: boolean; items: unknown[] } }>('migrate.run', { pid: t.pid, to: l.address, token: l.token, dryRun: true }, ctx('m-src'));
    assert.equal(dry.dryRun, true);
    assert.equal(dry.preflight.ok, true, JSON.stringify(dry.preflight));
    assert.ok(dry.preflight.items.length > 3);
    await waitFor('the dry run arrival', () => dst.events.some((e) => e.event === 'transfer.receiver' && (e.payload as { arrivals: { kind: string }[] }).arrivals[0]?.kind === 'dry-run'));
    assert.equal((await ok<{ listening: boolean }>('transfer.receiver', {}, dst)).listening, true, 'a dry run does not use the token up');

    const abort = new AbortController();
    const src = ctx('m-src', { signal: abort.signal, callId: 'mig-1' });
    const events: { op: string; phase?: string }[] = [];
    src.emit = (event, payload) => { if (event === 'op.progress') { events.push(payload as { op: string }); abort.abort(); } };
    const e = await fails('migrate.run', { pid: t.pid, to: l.address, token: l.token }, src);
    assert.equal(e.code, 'CANCELLED');
    assert.match(e.message, /runs on here untouched; the destination discards what it received/);
    assert.equal(events[0]!.op, 'migrate');
    assert.match(events[0]!.phase ?? '', /^round 1 \(full\)$/);
    assert.ok(t.alive(), 'the process runs on here');
    const n = fileLines(out).length;
    await waitFor('the counter to go on counting', () => fileLines(out).length > n + 5, 10_000);
    await waitFor('the failed arrival', () => dst.events.some((x) => x.event === 'transfer.receiver' && (x.payload as { arrivals: { kind: string }[] }).arrivals[0]?.kind === 'failed'), 20_000);
    assert.equal(dst.store().list().length, 0, 'the destination kept nothing');
  } finally {
    t.kill();
  }
});

test('a refused dry run comes back as PREFLIGHT_FAILED with the checklist; nothing stopped, and the receiver keeps listening', async () => {
  const gone = join(dir, 'cwd-gone');
  mkdirSync(gone);
  const out = join(dir, 'out-refused.txt');
  const t = spawnDetached([buildFixture('migrate-counter'), out, '4', '200'], { cwd: gone });
  try {
    await waitFor('the counter to start', () => fileLines(out).length > 20, 10_000);
    // Its working directory vanishes while it runs: the destination cannot give it back.
    rmSync(gone, { recursive: true });
    const dst = ctx('r-dst');
    const l = await ok<{ address: string; token: string }>('transfer.listen', { address: '127.0.0.1:0' }, dst);
    const e = await fails('migrate.run', { pid: t.pid, to: l.address, token: l.token, dryRun: true }, ctx('r-src'));
    assert.equal(e.code, 'PREFLIGHT_FAILED');
    const items = (e.detail as { items: { id: string; ok: boolean; reason: string }[] }).items;
    assert.deepEqual(items.filter((i) => !i.ok).map((i) => i.id), ['cwd']);
    assert.match(items.find((i) => i.id === 'cwd')!.reason, /had already been deleted when the checkpoint was taken/);
    assert.ok(t.alive());
    const n = fileLines(out).length;
    await waitFor('the counter to go on counting', () => fileLines(out).length > n + 5, 10_000);
    await waitFor('the dry run arrival', () => dst.events.some((x) => x.event === 'transfer.receiver' && (x.payload as { arrivals: { kind: string; sourcePid: number }[] }).arrivals[0]?.sourcePid === t.pid));
    const st = await ok<{ listening: boolean; arrivals: { kind: string; message: string }[] }>('transfer.receiver', {}, dst);
    assert.equal(st.arrivals[0]!.kind, 'dry-run', st.arrivals[0]!.message);
    assert.equal(st.listening, true, 'a refused dry run does not use the token up either');
    assert.equal(dst.store().list().length, 0);
  } finally {
    t.kill();
    await invoke('transfer.stop', {}, ctx('stop'));
  }
});

test('a send cancelled mid-stream: CANCELLED, and the receiver imports nothing', async () => {
  const src = ctx('c-src');
  const dst = ctx('c-dst');
  const r = rng(11);
  const view: View = new Map();
  // Random pages do not compress: 32 MiB is many chunks on the wire.
  for (let i = 0; i < 8192; i++) view.set(0x1000 + i, randomPage(r));
  const tg = src.store().upsertTarget({ pid: 14, startTime: '14', exe: '/bin/v', cmdline: ['v'] });
  const id = writeComplete(src.store(), tg.id, null, view, [mapping(0x1000, 8192, '/v')]);
  const l = await ok<{ address: string; token: string }>('transfer.listen', { address: '127.0.0.1:0' }, dst);
  const abort = new AbortController();
  const c = { ...src, signal: abort.signal, callId: 'send-c' };
  let seen = 0;
  c.emit = (event) => { if (event === 'op.progress' && ++seen === 1) abort.abort(); };
  const e = await fails('transfer.send', { id, to: l.address, token: l.token }, c);
  assert.equal(e.code, 'CANCELLED');
  await waitFor('the failed arrival', () => dst.events.some((x) => x.event === 'transfer.receiver' && (x.payload as { arrivals: { kind: string }[] }).arrivals[0]?.kind === 'failed'), 20_000);
  const st = await ok<{ listening: boolean; arrivals: { message: string }[] }>('transfer.receiver', {}, dst);
  assert.match(st.arrivals[0]!.message, /broke off|nothing was imported/);
  assert.equal(dst.store().list().length, 0, 'nothing imported');
});

test('migrate.run of a process tree with samePid false: each progress round is a round (not a member), the result names every process with its PID there, and the tree counts on there', async () => {
  const out = join(dir, 'tree-out.txt');
  const t = spawnDetached([buildFixture('tree-counter'), out, '4', '100'], { cwd: dir });
  const moved: number[] = [];
  try {
    await waitFor('the tree to count', () => fileLines(out).length > 20, 10_000);
    await invoke('transfer.stop', {}, ctx('t-dst'));
    const dst = ctx('t-dst');
    const l = await ok<{ address: string; token: string }>('transfer.listen', { address: '127.0.0.1:0' }, dst);
    const src = ctx('t-src', { callId: 'mig-tree' });
    const phases: string[] = [];
    src.emit = (event, payload) => { if (event === 'op.progress') phases.push((payload as { phase?: string }).phase ?? ''); };
    const r = await ok<{ rounds: unknown[]; destination: { pid: number }; tree: { members: { pid: number; comm: string; destinationPid: number | null }[] } }>('migrate.run', { pid: t.pid, to: l.address, token: l.token, samePid: false }, src);
    moved.push(...r.tree.members.map((m) => m.destinationPid!));
    assert.equal(r.tree.members.length, 3);
    assert.equal(r.tree.members[0]!.pid, t.pid);
    assert.equal(r.tree.members[0]!.destinationPid, r.destination.pid);
    assert.ok(r.tree.members.every((m) => m.comm === 'tree-counter' && m.destinationPid !== null && m.destinationPid !== m.pid), JSON.stringify(r.tree));
    const numbers = phases.map((p) => Number(/^round (\d+)/.exec(p)?.[1] ?? 0)).filter((n) => n > 0);
    assert.equal(Math.max(...numbers), r.rounds.length, `progress rounds ${JSON.stringify([...new Set(phases)])} for ${r.rounds.length} rounds`);
    assert.ok(phases.some((p) => /\(final, process frozen\)/.test(p)));
    await t.waitExit(10_000);
    const n = fileLines(out).length;
    await waitFor('the tree to count on there', () => fileLines(out).length > n + 20, 15_000);
  } finally {
    t.kill();
    for (const p of moved.reverse()) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  }
});
