/**
 * The app's receive listener (transfer.listen through api/invoke, as the Receive page calls it) is
 * the engine's one listener: it takes the CLI's replication sessions too. A real `stasis send PID
 * --follow` of a real counting process arrives checkpoint by checkpoint (each listed as it lands,
 * page for page equal to the source's); kept listening, it then also takes a plain stream; not
 * kept, a completed `send --to` session uses the token up.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { invoke } from '../../electron/api/invoke';
import type { HandlerContext } from '../../electron/api/context';
import { openStore, type Store } from '../../electron/engine/store';
import type { Arrival, ReceiverStatus } from '../../shared/contract/transfer';
import { assertSameView } from '../store/model';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { minimalState } from '../schedule/helpers/world';
import { bin, storeView, twoHosts } from '../helpers/two-hosts';
import { fileLines, killQuietly, waitFor } from '../restore/helpers';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-app-listener-'));
const stores: Store[] = [];
// Both ends on this machine (127.0.0.1): the listener lives in this test's own process.
const local = twoHosts('al');

function ctx(name: string): HandlerContext {
  let store: Store | null = null;
  const storeDir = path.join(dir, name);
  return {
    storeDir,
    store: () => { if (!store) { store = openStore(storeDir); stores.push(store); } return store; },
    emit: () => undefined,
  };
}

async function ok<T>(name: string, input: unknown, c: HandlerContext): Promise<T> {
  const r = await invoke(name, input, c);
  if (!r.ok) assert.fail(`${name}: ${r.error.code} ${r.error.message}`);
  return r.value as T;
}

after(async () => {
  await invoke('transfer.stop', {}, ctx('stop'));
  for (const s of stores) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const replicated = async (c: HandlerContext): Promise<Arrival[]> => (await ok<ReceiverStatus>('transfer.receiver', {}, c)).arrivals.filter((a) => a.kind === 'replicated');

test('kept listening, the app listener takes a `send PID --follow` session checkpoint by checkpoint, then a plain stream', async () => {
  const src = path.join(dir, 'src-follow');
  openStore(src).close();
  const rc = ctx('dst-follow');
  const counter = buildFixture('migrate-counter');
  const out = path.join(dir, 'counter.txt');
  const proc = spawnDetached([counter, out, '4', '50'], { cwd: dir });
  const l = await ok<ReceiverStatus & { token: string }>('transfer.listen', { address: '127.0.0.1:0', keep: true }, rc);
  assert.equal(l.keep, true);
  let sender: ReturnType<typeof local.start> | null = null;
  try {
    await waitFor('the counter to start', () => fileLines(out).length > 5, 10_000);
    sender = local.start([process.execPath, bin, '--store', src, '--json', 'send', String(proc.pid), '--follow', '--to', l.address!, '--token', l.token], undefined);
    const mine: number[] = [];
    for (let i = 1; i <= 2; i++) {
      const c = await local.run(src, ['--json', 'checkpoint', String(proc.pid)], undefined);
      assert.equal(c.code, 0, c.stderr);
      mine.push((JSON.parse(c.stdout) as { id: number }).id);
      const deadline = Date.now() + 60_000;
      while ((await replicated(rc)).length < i) {
        assert.ok(Date.now() < deadline, `checkpoint ${i} did not arrive: ${sender.err()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    killQuietly(proc.pid);
    const f = await sender.done;
    assert.equal(f.code, 0, f.stderr);
    const jf = JSON.parse(f.stdout) as { ended: string; sent: { id: number; remote: number }[] };
    assert.equal(jf.ended, 'exited');
    assert.deepEqual(jf.sent.map((s) => s.id), mine);
    // Listed as each one landed, newest first, with this store's ids.
    const arrived = await replicated(rc);
    assert.deepEqual(arrived.flatMap((a) => a.checkpointIds).sort((a, b) => a - b), jf.sent.map((s) => s.remote).sort((a, b) => a - b));
    for (const s of jf.sent) assertSameView(storeView(rc.storeDir, s.remote), storeView(src, s.id), `checkpoint #${s.id} here as #${s.remote}`);

    // Still listening with the same token: a plain stream (--flatten) is taken too.
    const st = await ok<ReceiverStatus>('transfer.receiver', {}, rc);
    assert.equal(st.listening, true);
    const p = await local.run(src, ['--json', 'send', String(mine[1]), '--flatten', '--to', l.address!, '--token', l.token], undefined);
    assert.equal(p.code, 0, p.stderr);
    const got = (JSON.parse(p.stdout) as { received: number[] }).received;
    const after = await ok<ReceiverStatus>('transfer.receiver', {}, rc);
    assert.equal(after.listening, true);
    assert.deepEqual(after.arrivals[0]!.kind, 'checkpoints');
    assert.deepEqual(after.arrivals[0]!.checkpointIds, got);
    assertSameView(storeView(rc.storeDir, got[0]!), storeView(src, mine[1]!), 'the flattened copy');
  } finally {
    killQuietly(proc.pid);
    sender?.child.kill();
    await invoke('transfer.stop', {}, rc);
  }
});

test('not kept, a completed `send --to` replication session uses the token up', async () => {
  const src = path.join(dir, 'src-one');
  const s = openStore(src);
  const tg = s.upsertTarget({ pid: 31, startTime: '31', exe: '/bin/z', cmdline: ['z'] });
  const w = s.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete', label: null });
  w.setState(minimalState(31, '31'));
  w.addPages(0x10000n, Buffer.alloc(4096, 7));
  w.addPages(0x11000n, Buffer.alloc(4096, 8));
  const id = w.commit({ frozenMs: 1, durationMs: 1 }).id;
  s.close();
  const rc = ctx('dst-one');
  const l = await ok<ReceiverStatus & { token: string }>('transfer.listen', { address: '127.0.0.1:0' }, rc);
  assert.equal(l.keep, false);
  const a = await local.run(src, ['--json', 'send', String(id), '--to', l.address!, '--token', l.token], undefined);
  assert.equal(a.code, 0, a.stderr);
  const remote = (JSON.parse(a.stdout) as { received: number[] }).received;
  const deadline = Date.now() + 10_000;
  let st = await ok<ReceiverStatus>('transfer.receiver', {}, rc);
  while (st.listening && Date.now() < deadline) { await new Promise((r) => setTimeout(r, 100)); st = await ok<ReceiverStatus>('transfer.receiver', {}, rc); }
  assert.equal(st.listening, false, 'the token was used up');
  assert.equal(st.arrivals[0]!.kind, 'replicated');
  assert.deepEqual(st.arrivals[0]!.checkpointIds, remote);
  assertSameView(storeView(rc.storeDir, remote[0]!), storeView(src, id), 'the replicated checkpoint');
  const again = await local.run(src, ['send', String(id), '--to', l.address!, '--token', l.token], undefined);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /Cannot send to .*ECONNREFUSED/);
});
