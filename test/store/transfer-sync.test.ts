// Replication (`send --to`, `send PID --follow`) with real parts: two bin/stasis.js processes, two
// real stores, TLS between two network namespaces this test creates (a veth pair, 10.99.N.1/30 and
// .2; 127.0.0.1 when `ip netns` is not allowed), and a relay in the sender's namespace
// (test/helpers/cut-proxy.mjs) that counts the bytes on the wire and cuts or damages the first
// connection. Only pages the receiver lacks travel; a cut or damaged connection resumes without
// sending a page twice; a damaged spool is not trusted; a full disk imports nothing; --follow
// sends each new checkpoint of a real process and ends when it exits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import { assertSameView, mapping, randomPage, rng, tempDir, type View } from './model';
import { writeComplete } from './model';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { arrivingBytes, bin, keptSegments, storeIds, storeView, twoHosts } from '../helpers/two-hosts';
import { fileLines, killQuietly, sleep, waitFor } from '../restore/helpers';

const t = tempDir('stasis-transfer-sync-');
const src = path.join(t.dir, 'src');
const PAGES = 2000;
const view1: View = new Map();
const view2: View = new Map();
const CHANGED = 100;

// The network: sender side A, receiver side B (test/helpers/two-hosts.ts).
const hosts = twoHosts('sy');
const { nsA, run, start, receiver, relay } = hosts;
const ids = storeIds;
const viewOf = storeView;

before(() => {
  const store = openStore(src);
  const r = rng(14);
  const tg = store.upsertTarget({ pid: 21, startTime: '21', exe: '/bin/z', cmdline: ['z'] });
  for (let i = 0; i < PAGES; i++) view1.set(0x900 + i, randomPage(r));
  writeComplete(store, tg.id, null, view1, [mapping(0x900, PAGES, '/z')]);
  for (const [k, v] of view1) view2.set(k, v);
  for (let i = 0; i < CHANGED; i++) view2.set(0x900 + i * 7, randomPage(r));
  writeComplete(store, tg.id, 1, view2, [mapping(0x900, PAGES, '/z')]);
  // Another process holding 1500 of checkpoint 1's pages: a store holding it has them already.
  const other = store.upsertTarget({ pid: 22, startTime: '22', exe: '/bin/w', cmdline: ['w'] });
  const part: View = new Map([...view1].slice(0, 1500));
  writeComplete(store, other.id, null, part, [mapping(0x900, 1500, '/w')]);
  store.close();
  hosts.setup();
});
after(() => {
  hosts.teardown();
  t.cleanup();
});

const LACK_RATIO = 1.1;

test('only the pages the receiver lacks cross the wire: held elsewhere in its store, then a continuation, then nothing', async () => {
  const dst = path.join(t.dir, 'dst-negotiate');
  // The receiver holds another process's checkpoint sharing 1500 pages with #1.
  const seed = path.join(t.dir, 'seed.stream');
  assert.equal((await run(src, ['export', '3', '-o', seed], undefined)).code, 0);
  assert.equal((await run(dst, ['import', seed], undefined)).code, 0);
  const l = await receiver(dst, ['--keep']);
  const px = await relay(l.addr);
  try {
    const a = await run(src, ['--json', 'send', '1', '--to', px.addr, '--token', l.token]);
    assert.equal(a.code, 0, a.stderr);
    const ja = JSON.parse(a.stdout) as { pagesSent: number; pagesHeld: number; received: number[]; wireBytes: number };
    assert.equal(ja.pagesHeld, 1500);
    assert.equal(ja.pagesSent, PAGES - 1500);
    await waitFor('the relay to count the first connection', () => px.conns() === 1, 10_000);
    const lacked = (PAGES - 1500) * 4096;
    assert.ok(px.up() <= LACK_RATIO * lacked, `wire ${px.up()} bytes for ${lacked} bytes of lacked pages`);
    assertSameView(viewOf(dst, ja.received[0]!), view1, 'checkpoint 1 there');

    // #2 continues #1, which the receiver now holds: only its changed pages travel.
    const b = await run(src, ['--json', 'send', '2', '--to', px.addr, '--token', l.token]);
    assert.equal(b.code, 0, b.stderr);
    const jb = JSON.parse(b.stdout) as { pagesSent: number; received: number[]; checkpoints: number[] };
    assert.deepEqual(jb.checkpoints, [2]);
    assert.equal(jb.pagesSent, CHANGED);
    await waitFor('the relay to count the second connection', () => px.conns() === 2, 10_000);
    assert.ok(px.connUp(1) <= LACK_RATIO * CHANGED * 4096, `wire ${px.connUp(1)} bytes for ${CHANGED * 4096} bytes of changed pages`);
    assertSameView(viewOf(dst, jb.received[0]!), view2, 'checkpoint 2 there');

    // Sent again: the receiver holds it, nothing is sent, nothing imported twice.
    const before = ids(dst).length;
    const c = await run(src, ['--json', 'send', '2', '--to', px.addr, '--token', l.token]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((JSON.parse(c.stdout) as { already: boolean; pagesSent: number }).already, true);
    assert.equal(ids(dst).length, before);
  } finally {
    l.child.kill('SIGINT');
    px.child.kill();
  }
  const r = await l.done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(dst).filter((n) => n.startsWith('.')), []);
});

test('a connection cut mid-stream reconnects and resumes: no page crosses twice, the import is exact', async () => {
  const dst = path.join(t.dir, 'dst-cut');
  const l = await receiver(dst);
  const px = await relay(l.addr, ['--cut', String(4 << 20)]);
  try {
    const a = await run(src, ['--json', 'send', '1', '--to', px.addr, '--token', l.token]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stderr, /The connection broke .*reconnecting/);
    const r = await l.done;
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { ids: number[]; pagesReceived: number; pagesResumed: number; sessions: number };
    assert.equal(got.sessions, 2);
    assert.ok(got.pagesResumed > 0, `pages resumed from what the first connection delivered: ${got.pagesResumed}`);
    assert.equal(got.pagesReceived + got.pagesResumed, PAGES, 'every page received exactly once');
    await waitFor('the relay to count both connections', () => px.conns() === 2, 10_000);
    // What was in flight at the cut is lost with it; the resend carries only what had not fully arrived.
    const rest = (PAGES - got.pagesResumed) * 4096;
    assert.ok(px.connUp(1) <= LACK_RATIO * rest, `the resend put ${px.connUp(1)} bytes on the wire for ${rest} bytes of pages not yet received`);
    assertSameView(viewOf(dst, got.ids[0]!), view1, 'resumed transfer');
    assert.deepEqual(fs.readdirSync(dst).filter((n) => n.startsWith('.')), []);
  } finally {
    px.child.kill();
  }
});

test('a byte damaged on the wire breaks the TLS link, the transfer resumes and imports exactly', async () => {
  const dst = path.join(t.dir, 'dst-flip');
  const l = await receiver(dst);
  const px = await relay(l.addr, ['--flip', String(3 << 20)]);
  try {
    const a = await run(src, ['--json', 'send', '1', '--to', px.addr, '--token', l.token]);
    assert.equal(a.code, 0, a.stderr);
    const r = await l.done;
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { ids: number[]; pagesReceived: number; pagesResumed: number };
    assert.equal(got.pagesReceived + got.pagesResumed, PAGES);
    assertSameView(viewOf(dst, got.ids[0]!), view1, 'after a damaged connection');
  } finally {
    px.child.kill();
  }
});

test('a sender killed mid-transfer: what arrived is kept in the store for a new send to resume from, and a damaged kept page is not trusted', async () => {
  const dst = path.join(t.dir, 'dst-killed');
  const l = await receiver(dst);
  const px = await relay(l.addr, ['--hold', String(3 << 20)]);
  try {
    const s = start([process.execPath, bin, '--store', src, 'send', '1', '--to', px.addr, '--token', l.token], nsA);
    await waitFor('pages to arrive', () => arrivingBytes(dst) >= 400 * 4096, 30_000);
    s.child.kill('SIGKILL');
    await s.done;
    await waitFor('the receiver to see the break', () => /broke off/.test(l.err()), 30_000);
    await waitFor('the arrived pages to be kept', () => keptSegments(dst).length === 1, 30_000);
    const [kept] = keptSegments(dst);
    // Damage page 200 of the stream where the kept segment holds it (random bytes: found once).
    const victim = view1.get(0x900 + 200)!;
    const bytes = fs.readFileSync(kept!);
    const at = bytes.indexOf(victim.subarray(0, 64));
    assert.ok(at > 0, 'page 200 arrived before the kill');
    const fd = fs.openSync(kept!, 'r+');
    fs.writeSync(fd, Buffer.from([bytes[at + 100]! ^ 0x5a]), 0, 1, at + 100);
    fs.closeSync(fd);
    // A damaged kept segment is not used at all: every page travels again, and the import is exact.
    const a = await run(src, ['--json', 'send', '1', '--to', l.addr, '--token', l.token]);
    assert.equal(a.code, 0, a.stderr);
    const ja = JSON.parse(a.stdout) as { pagesSent: number; pagesResumed: number };
    assert.equal(ja.pagesResumed, 0);
    assert.equal(ja.pagesSent, PAGES);
    const r = await l.done;
    assert.equal(r.code, 0, r.stderr);
    assertSameView(viewOf(dst, (JSON.parse(r.stdout) as { ids: number[] }).ids[0]!), view1, 'imported past a damaged kept segment');
  } finally {
    px.child.kill();
  }
});

test('a wrong token is refused at once, the listener waits on; a full destination disk imports nothing and keeps no spool', async (ctx) => {
  const dst = path.join(t.dir, 'dst-full');
  fs.mkdirSync(dst, { mode: 0o700 });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dst], { stdio: 'ignore' });
  } catch (_e) {
    ctx.skip('cannot mount a tmpfs here');
    return;
  }
  try {
    const l = await receiver(dst);
    const wrong = await run(src, ['send', '1', '--to', l.addr, '--token', `stasis1-${Buffer.alloc(32, 9).toString('base64url')}`]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the pairing token.*Nothing was sent/);
    const a = await run(src, ['send', '1', '--to', l.addr, '--token', l.token]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /disk is full/);
    const r = await l.done;
    assert.equal(r.code, 1);
    assert.equal(ids(dst).length, 0);
    assert.deepEqual(fs.readdirSync(dst).filter((n) => n.startsWith('.')), []);
  } finally {
    execFileSync('umount', [dst], { stdio: 'ignore' });
  }
});

test('send PID --follow: every checkpoint taken by hand reaches the receiver, across a cut link; the process exiting mid-send ends it cleanly', async () => {
  const counter = buildFixture('migrate-counter');
  const dst = path.join(t.dir, 'dst-follow');
  const fsrc = path.join(t.dir, 'src-follow');
  const out = path.join(t.dir, 'follow-out.txt');
  // Created before two Stasis processes open it at once (two first opens race on the schema: see the note).
  openStore(fsrc).close();
  const proc = spawnDetached([counter, out, '4', '50'], { cwd: t.dir });
  const l = await receiver(dst);
  const px = await relay(l.addr, ['--cut', String(2 << 20)]);
  try {
    await waitFor('the counter to start', () => fileLines(out).length > 5);
    const f = start([process.execPath, bin, '--store', fsrc, '--json', 'send', String(proc.pid), '--follow', '--to', px.addr, '--token', l.token], nsA);
    const mine: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const c = await run(fsrc, ['--json', 'checkpoint', String(proc.pid)], undefined);
      assert.equal(c.code, 0, c.stderr);
      mine.push((JSON.parse(c.stdout) as { id: number }).id);
      if (i < 3) await waitFor(`checkpoint ${i} to arrive`, () => (l.err().match(/Imported checkpoint/g) ?? []).length >= i, 60_000);
      else killQuietly(proc.pid); // exits while its last checkpoint is on its way
      await sleep(100);
    }
    const fr = await f.done;
    assert.equal(fr.code, 0, fr.stderr);
    const jf = JSON.parse(fr.stdout) as { ended: string; sent: { id: number; remote: number }[] };
    assert.equal(jf.ended, 'exited');
    assert.deepEqual(jf.sent.map((s) => s.id), mine);
    assert.ok(px.conns() >= 2, 'the cut link was reconnected');
    const r = await l.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { ids: number[] }).ids.length, 3);
    for (const s of jf.sent) assertSameView(viewOf(dst, s.remote), viewOf(fsrc, s.id), `checkpoint #${s.id} there as #${s.remote}`);
  } finally {
    killQuietly(proc.pid);
    px.child.kill();
    l.child.kill();
  }
});

test('send --pipe (as through ssh): a receiver whose input ends mid-stream is respawned and resumes from what it kept', async () => {
  const dst = path.join(t.dir, 'dst-pipe');
  const flag = path.join(t.dir, 'pipe-broke-once');
  const recv = `${process.execPath} ${bin} --store ${dst} receive`;
  // The first run's input ends after 48 reads of at most 64 KiB (like a dropped ssh); later runs are whole.
  const cmd = `if [ -e ${flag} ]; then exec ${recv}; else touch ${flag}; dd bs=65536 count=48 2>/dev/null | ${recv}; fi`;
  const a = await run(src, ['--json', 'send', '1', '--pipe', cmd], undefined);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stderr, /broke off.*kept here/);
  const j = JSON.parse(a.stdout) as { received: number[]; pagesSent: number; pagesResumed: number };
  assert.ok(j.pagesResumed > 0, `resumed ${j.pagesResumed}`);
  assert.equal(j.pagesSent + j.pagesResumed, PAGES, 'no page sent twice after it arrived');
  assertSameView(viewOf(dst, j.received[0]!), view1, 'over a respawned pipe');
  assert.deepEqual(fs.readdirSync(dst).filter((n) => n.startsWith('.')), []);
});
