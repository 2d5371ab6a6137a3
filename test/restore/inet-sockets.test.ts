// TCP and UDP sockets that are not connections come back (restore-inet.c checks addresses, options,
// status flags and that each socket works); what cannot come back exactly is refused by the
// pre-flight and by restore with the reason: a connection waiting to be accepted, a TCP connection,
// and an address in use on this machine now.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { StasisError } from '../../shared/errors';
import { waitFor, withStore } from './helpers';
import { spawnDetached } from '../helpers/spawn';
import { runZdtm, startZdtm } from './zdtm';

const bin = buildFixture('restore-inet');

test('listening TCP (IPv4 and IPv6) and bound UDP sockets come back with their addresses, options and flags, and work', async () => {
  await withStore(async (store, dir) => {
    const run = await runZdtm(store, dir, bin);
    assert.deepEqual(run.lines.filter((l) => l.startsWith('fail')), []);
    assert.equal(run.lines.at(-1), 'done pass');
  });
});

test('a listening socket a forked child holds too comes back as one socket in both (tree checkpoint)', async () => {
  await withStore(async (store, dir) => {
    const run = await runZdtm(store, dir, bin, { args: ['fork'], tree: true });
    assert.deepEqual(run.lines.filter((l) => l.startsWith('fail')), []);
    assert.equal(run.lines.at(-1), 'done pass');
  });
});

test('a connection waiting to be accepted, and a TCP connection, are refused with the reason', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(bin, dir, ['pending']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const pf = preflight(store, c.id);
      const fds = pf.items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /listening TCP socket on 127\.0\.0\.1:\d+\) had connections waiting to be accepted: they would be lost/);
      assert.match(fds.reason, /is a TCP connection from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\d+/);
      assert.throws(() => restore(store, c.id, { samePid: false }), (e: unknown) => e instanceof StasisError && /waiting to be accepted|TCP connection/.test(e.message));
    } finally {
      t.kill();
    }
  });
});

test('a listening socket whose port is in use now (the original still runs) is refused until it is free', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(bin, dir);
    try {
      const c = checkpoint(store, t.pid, { mode: 'leave-running' });
      const port = readFileSync(join(dir, 'ports'), 'utf8').trim().split(' ')[0];
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, new RegExp(`127\\.0\\.0\\.1:${port}\\) cannot be bound on this machine now: EADDRINUSE`));
      assert.match(fds.fix ?? '', new RegExp(`Stop what uses TCP port ${port} here`));
      t.kill();
      await t.waitExit();
      const free = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(free.ok, true, `free once the original is gone: ${free.reason}`);
      assert.match(free.reason, new RegExp(`fd 3: TCP socket listening on 127\\.0\\.0\\.1:${port} again`));
      assert.match(free.reason, /UDP socket on 127\.0\.0\.1:\d+ connected to 127\.0\.0\.1:\d+ made again/);
    } finally {
      t.kill();
    }
  });
});

test('a socket bound to a network interface (SO_BINDTODEVICE) this machine no longer has is refused, naming it', async (tt) => {
  const dev = `stasisv${process.pid % 100000}`;
  // A veth pair (the dummy driver is not in every kernel); deleting one end deletes both.
  if (spawnSync('ip', ['link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`]).status !== 0) { tt.skip('ip link add veth is not possible here'); return; }
  await withStore(async (store, dir) => {
    const ready = `${dir}/bound`;
    const t = spawnDetached(['python3', '-c', `import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"${dev}")
s.bind(("0.0.0.0", 0))
open(${JSON.stringify(ready)}, "w").close()
time.sleep(1000)`]);
    try {
      await waitFor('the bound socket', () => existsSync(ready), 10_000);
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      assert.equal(preflight(store, c.id).items.find((i) => i.id === 'fds')!.ok, true, 'the interface is there: it comes back');
      spawnSync('ip', ['link', 'del', dev]);
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, new RegExp(`is bound to the network interface ${dev} \\(SO_BINDTODEVICE\\), which this machine does not have`));
      assert.match(fds.fix ?? '', new RegExp(`interface named ${dev}`));
    } finally {
      t.kill();
      spawnSync('ip', ['link', 'del', dev]);
    }
  });
});
