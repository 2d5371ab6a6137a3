// A schedule's "also send to" with real parts: `stasis daemon` in the sender's network namespace
// checkpointing a real process with the real capture engine into a real store, and `stasis receive
// --listen --keep` in the receiver's namespace with its own store (test/helpers/two-hosts.ts). Each
// checkpoint the schedule commits arrives there page for page, sending only what the receiver
// lacks; the token is shown nowhere; a receiver that cannot be reached leaves the checkpoint
// committed, the status says why, and the next run's send catches up with what it missed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import { ScheduleDb } from '../../electron/engine/schedule/db';
import type { Schedule } from '../../electron/engine/schedule/types';
import { assertSameView } from '../store/model';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { storeIds, storeView, twoHosts, type Proc, type Receiver, type Relay } from '../helpers/two-hosts';
import { bin } from '../helpers/two-hosts';
import { waitFor } from '../restore/helpers';

const hosts = twoHosts('ss');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-sendto-'));
const src = path.join(dir, 'src');
let daemon: Proc;
let target: DetachedProcess;

before(async () => {
  hosts.setup();
  // Created before two Stasis processes open it (the CLI and the daemon).
  openStore(src).close();
  new ScheduleDb(src).close();
  target = spawnDetached([buildFixture('schedule-target')]);
  // A failed send is tried again after 1 s, 2 s, 4 s... (the default starts at 5 s).
  daemon = hosts.start([process.execPath, bin, '--store', src, 'daemon', '--tick', '200ms', '--retry-delay', '1s'], hosts.nsA);
  await waitFor('the daemon to act', () => /acting scheduler/.test(daemon.err()), 30_000);
});

after(async () => {
  daemon.child.kill('SIGTERM');
  await daemon.done;
  target.kill();
  hosts.teardown();
  fs.rmSync(dir, { recursive: true, force: true });
});

function schedule(id: number): Schedule {
  const db = new ScheduleDb(src);
  try { return db.require(id); } finally { db.close(); }
}

async function addSchedule(to: string, token: string): Promise<number> {
  const r = await hosts.run(src, ['--json', 'schedule', 'add', String(target.pid), '--manual', '--send-to', to, '--token', token]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { id: number }).id;
}

/** Takes one run of the schedule and waits for its send to end; returns the checkpoint it took. */
async function runOnce(id: number, n: number): Promise<{ checkpoint: number; s: Schedule }> {
  const r = await hosts.run(src, ['schedule', 'run', String(id)]);
  assert.equal(r.code, 0, r.stderr);
  let s = schedule(id);
  const db = new ScheduleDb(src);
  let checkpoint = 0;
  try {
    await waitFor(`run ${n} of schedule ${id}`, () => db.history(id).filter((x) => x.result === 'ok').length >= n, 60_000);
    checkpoint = db.history(id).find((x) => x.result === 'ok')!.checkpointId!;
    await waitFor(`the send of checkpoint #${checkpoint}`, () => {
      s = db.require(id);
      return s.lastSend !== null && s.lastSend.result !== 'sending' && s.lastSend.checkpointId === checkpoint;
    }, 90_000);
  } finally {
    db.close();
  }
  return { checkpoint, s };
}

/** The receiver's copy of each source checkpoint (an import keeps the creation time and the process's identity). */
function assertReplicated(dst: string, checkpoints: number[]): void {
  const a = openStore(src);
  const b = openStore(dst);
  try {
    const there = new Map(b.list().map((c) => [c.createdAt, c.id]));
    for (const id of checkpoints) {
      const c = a.get(id)!;
      const remote = there.get(c.createdAt);
      assert.ok(remote !== undefined, `checkpoint #${id} is on the receiver`);
      assertSameView(storeView(dst, remote), storeView(src, id), `checkpoint #${id} there as #${remote}`);
    }
  } finally {
    a.close();
    b.close();
  }
}

test('a schedule with a destination sends each checkpoint it commits: the receiver ends with them, page for page, only what it lacked; the token shows nowhere', async () => {
  const dst = path.join(dir, 'dst-1');
  const l: Receiver = await hosts.receiver(dst, ['--keep']);
  const px: Relay = await hosts.relay(l.addr);
  try {
    const id = await addSchedule(px.addr, l.token);
    const taken: number[] = [];
    let through = 0;
    for (let n = 1; n <= 3; n++) {
      const { checkpoint, s } = await runOnce(id, n);
      taken.push(checkpoint);
      assert.equal(s.lastSend!.result, 'ok', s.lastSend!.error ?? '');
      assert.equal(s.lastSend!.sentThrough, checkpoint);
      assert.ok(s.lastSend!.remoteId !== null && s.lastSend!.bytes > 0);
      if (n > 1) {
        // Incrementals: only the pages they changed cross (the receiver holds the rest from the
        // earlier ones). Bounded by the pages changed, not by the pages stored: two changed pages
        // with the same new contents are stored once but sent as two. A send covers every
        // checkpoint committed since the last one (a run can commit while a slow send goes on).
        const st = openStore(src);
        const target = st.get(checkpoint)!.targetId;
        const covered = st.list({ targetId: target }).filter((c) => c.id > through && c.id <= checkpoint);
        const changed = covered.reduce((sum, c) => sum + c.stats.pagesChanged, 0);
        st.close();
        assert.ok(s.lastSend!.pagesSent <= changed, `sent ${s.lastSend!.pagesSent} pages for incrementals ${covered.map((c) => `#${c.id}`).join(', ')} that changed ${changed}`);
      }
      through = checkpoint;
    }
    assertReplicated(dst, taken);
    // The token is kept for the sends, and shown back only by its end.
    const ls = await hosts.run(src, ['--json', 'schedule', 'ls']);
    const human = await hosts.run(src, ['schedule', 'ls']);
    assert.equal(ls.code, 0, ls.stderr);
    const mine = (JSON.parse(ls.stdout) as { schedules: { id: number; sendTo: { address: string; tokenHint: string } }[] }).schedules.find((x) => x.id === id)!;
    assert.deepEqual(mine.sendTo, { address: px.addr, tokenHint: `…${l.token.slice(-4)}` });
    assert.match(human.stdout, /send to: .* last send: ok/);
    for (const text of [ls.stdout, human.stdout, daemon.err()]) assert.ok(!text.includes(l.token.slice(8)), 'the token appears in an output or the log');
    assert.equal(fs.statSync(path.join(src, 'schedules.db')).mode & 0o777, 0o600);
    assert.ok(/schedule #\d+: send of checkpoint #\d+ done/.test(daemon.err()), daemon.err());
  } finally {
    l.child.kill('SIGINT');
    px.child.kill();
  }
  const r = await l.done;
  assert.equal(r.code, 0, r.stderr);
});

test('the receiver down: the checkpoint is still committed, the status says why and when it is tried again, and the retry catches up with what it missed without waiting for a run', async () => {
  const dst = path.join(dir, 'dst-2');
  const l = await hosts.receiver(dst, ['--keep']);
  let px = await hosts.relay(l.addr);
  const port = px.port;
  try {
    const id = await addSchedule(px.addr, l.token);
    const first = await runOnce(id, 1);
    assert.equal(first.s.lastSend!.result, 'ok', first.s.lastSend!.error ?? '');
    assert.equal(first.s.lastSend!.failures, 0);

    // The way to the receiver is gone.
    px.child.kill();
    await px.done;
    const second = await runOnce(id, 2);
    const h = new ScheduleDb(src);
    const runs = h.history(id);
    h.close();
    assert.equal(runs[0]!.result, 'ok', 'the run itself succeeded');
    assert.equal(second.s.lastResult, 'ok');
    const st = openStore(src);
    assert.ok(st.get(second.checkpoint) !== null, 'the checkpoint is committed');
    st.close();
    const failed = second.s.lastSend!;
    assert.equal(failed.result, 'failed');
    assert.match(failed.error!, /Cannot send to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    assert.equal(failed.sentThrough, first.checkpoint, 'the destination holds up to the first');
    assert.ok(failed.retryAt != null && failed.retryAt > failed.at && failed.retryAt - failed.at <= 1_000 * 2 ** ((failed.failures ?? 1) - 1) + 50, `retry at ${String(failed.retryAt)} after a failure at ${failed.at}`);
    const human = await hosts.run(src, ['schedule', 'ls']);
    assert.match(human.stdout, /last send: failed at .*ECONNREFUSED.*the destination holds up to #\d+; tried again at .* or at the next run/);

    // Still down: the retries fail too, each one waiting longer.
    let down = schedule(id);
    await waitFor('a second failed send', () => (down = schedule(id)).lastSend!.failures! >= 2 && down.lastSend!.result === 'failed', 30_000);
    const d = down.lastSend!;
    assert.ok(d.retryAt! - d.at >= 1_900, `the second retry waits twice as long (${d.retryAt! - d.at} ms)`);
    assert.match(daemon.err(), /send of checkpoint #\d+ failed \(tried again at .*, or at the next run\)/);

    // Back on the same address: the retry sends what it missed, with no run in between.
    px = await hosts.relay(l.addr, ['--port', String(port)]);
    let back = schedule(id);
    await waitFor('the retried send', () => (back = schedule(id)).lastSend!.result === 'ok', 60_000);
    assert.equal(back.lastSend!.sentThrough, second.checkpoint);
    assert.equal(back.lastSend!.checkpoints, 1, 'the missed checkpoint');
    assert.equal(back.lastSend!.failures, 0);
    assert.equal(back.lastSend!.retryAt, null);
    const h2 = new ScheduleDb(src);
    assert.equal(h2.history(id).length, 2, 'no run was taken for it');
    h2.close();
    assertReplicated(dst, [first.checkpoint, second.checkpoint]);

    const third = await runOnce(id, 3);
    assert.equal(third.s.lastSend!.result, 'ok', third.s.lastSend!.error ?? '');
    assert.equal(third.s.lastSend!.sentThrough, third.checkpoint);
    assert.equal(third.s.lastSend!.checkpoints, 1, 'only the new one');
    assertReplicated(dst, [first.checkpoint, second.checkpoint, third.checkpoint]);
  } finally {
    l.child.kill('SIGINT');
    px.child.kill();
  }
  const r = await l.done;
  assert.equal(r.code, 0, r.stderr);
  // The first send brought the chain the checkpoint needs (the first test's checkpoints of the same process, too).
  const got = JSON.parse(r.stdout) as { ids: number[]; sessions: number };
  assert.deepEqual(got.ids, storeIds(dst));
  assert.equal(got.sessions, 3, 'one session per send that reached it: the first, the retry, the third');
});

test('the CLI names what is wrong with --send-to and --token before anything is stored, and never repeats the token', async () => {
  const token = `stasis1-${Buffer.alloc(32, 6).toString('base64url')}`;
  const cases: [string[], RegExp][] = [
    [['--send-to', 'nohost', '--token', token], /"nohost" is not HOST:PORT/],
    [['--send-to', '10.0.0.5:7411'], /--send-to needs --token T/],
    [['--token', token], /--token goes with --send-to HOST:PORT/],
    [['--send-to', '10.0.0.5:7411', '--token', 'stasis1-SECRETSECRETSECRET'], /is not a pairing token/],
    [['--send-to', 'none'], /--send-to none only applies to `schedule edit`/],
  ];
  const before = new ScheduleDb(src);
  const n = before.list().length;
  before.close();
  for (const [args, why] of cases) {
    const r = await hosts.run(src, ['schedule', 'add', String(target.pid), '--manual', ...args]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, why);
    assert.ok(!r.stderr.includes('SECRETSECRETSECRET') && !r.stderr.includes(token.slice(8)), r.stderr);
  }
  const after = new ScheduleDb(src);
  assert.equal(after.list().length, n, 'nothing was stored');
  after.close();
});
