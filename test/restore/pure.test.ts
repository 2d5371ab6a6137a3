import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildStubElf, stubPath, STUB_BASE, STUB_SYSCALL_ADDR } from '../../electron/engine/restore/stub-elf';
import { buildRestorePlan, parseMaps, TRAMPOLINE_SIZE, MAP_GROWSDOWN, MAP_SHARED, type LayoutEntry } from '../../electron/engine/restore/plan';
import { preflightState } from '../../electron/engine/restore/preflight';
import { hostFacts } from '../../electron/engine/restore/host-facts';
import { spawnDetached } from '../helpers/spawn';
import { anonMapping, fileMapping, syntheticState } from './synthetic-state';

const redirect = { log: '/tmp/stasis-restore-test.log' };

test('the stub ELF is tiny, static, and sleeps in pause(2) at its fixed address', async () => {
  const elf = buildStubElf();
  assert.ok(elf.length < 200, `stub is ${elf.length} bytes`);
  assert.equal(elf.subarray(0, 4).toString('latin1'), '\x7fELF');
  assert.deepEqual([...elf.subarray(Number(STUB_SYSCALL_ADDR - STUB_BASE), Number(STUB_SYSCALL_ADDR - STUB_BASE) + 2)], [0x0f, 0x05]);
  const path = stubPath();
  assert.ok(readFileSync(path).equals(elf));
  const dir = mkdtempSync(join(tmpdir(), 'stasis-stub-'));
  try {
    const other = stubPath(dir);
    assert.ok(other.startsWith(dir + '/') && readFileSync(other).equals(elf), 'written where asked (fallback for a noexec /tmp)');
    assert.equal(stubPath(dir), other, 'reused when already there');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const t = spawnDetached([path]);
  try {
    let sc = '';
    for (let i = 0; i < 200 && !sc.startsWith('34 '); i++) {
      sc = readFileSync(`/proc/${t.pid}/syscall`, 'utf8');
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.match(sc, /^34 /, 'stub waits in pause()');
    const maps = parseMaps(readFileSync(`/proc/${t.pid}/maps`, 'utf8'));
    assert.equal(maps[0].start, STUB_BASE);
    assert.ok(maps.some((m) => m.name === '[vdso]'));
  } finally {
    t.kill();
  }
});

test('the plan puts the trampoline where neither layout has anything and moves the special mappings via free slots', () => {
  const state = syntheticState(process.execPath);
  const stub: LayoutEntry[] = [
    { start: 0x10000n, end: 0x11000n, name: '/tmp/stub' },
    { start: 0x7f0000006000n, end: 0x7f000000a000n, name: '[vvar]' }, // overlaps the checkpoint's vdso slot
    { start: 0x7f000000a000n, end: 0x7f000000c000n, name: '[vvar_vclock]' },
    { start: 0x7f000000c000n, end: 0x7f000000e000n, name: '[vdso]' },
    { start: 0x7ffd00000000n, end: 0x7ffd00021000n, name: '[stack]' },
  ];
  const plan = buildRestorePlan(state, stub);
  const all = [...state.mappings, ...stub];
  const tramp = { start: plan.trampoline, end: plan.trampoline + TRAMPOLINE_SIZE };
  for (const m of all) assert.ok(m.end <= tramp.start || m.start >= tramp.end, 'trampoline overlaps');
  assert.deepEqual(plan.unmap.map((r) => r.start), [0x10000n, 0x7ffd00000000n]);
  assert.deepEqual(plan.specials.map((s) => [s.kind, s.to]), [['vvar', 0x7f0000000000n], ['vvar_vclock', 0x7f0000004000n], ['vdso', 0x7f0000006000n]]);
  for (const s of plan.specials) {
    for (const m of all) assert.ok(m.end <= s.temp || m.start >= s.temp + (s.from.end - s.from.start), 'temp slot overlaps');
  }
  assert.deepEqual(plan.steps.map((s) => s.kind), ['file-private', 'anon', 'anon']);
  assert.ok(plan.steps[2].flags & MAP_GROWSDOWN, 'stack grows down');
});

test('a MAP_SHARED file mapping is mapped shared and never written with saved pages', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-restore-'));
  try {
    const f = join(dir, 'shared.bin');
    writeFileSync(f, Buffer.alloc(8192));
    const state = syntheticState(process.execPath, {});
    state.mappings.push(fileMapping(f, 0x2000000n, 0x2002000n, 'rw-s'));
    const plan = buildRestorePlan(state, []);
    const step = plan.steps.find((s) => s.path === f)!;
    assert.equal(step.kind, 'file-shared');
    assert.ok(step.flags & MAP_SHARED);
    assert.equal(step.writeContents, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pre-flight passes for an unchanged layout and names each failure with a fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-restore-'));
  try {
    const exe = join(dir, 'prog');
    copyFileSync(process.execPath, exe);
    const lib = join(dir, 'lib.so');
    writeFileSync(lib, Buffer.alloc(4096, 1));
    const data = join(dir, 'data.txt');
    writeFileSync(data, 'hello');
    const base = () => {
      const s = syntheticState(exe, { cwd: dir });
      s.mappings.push(fileMapping(lib, 0x7e0000000000n, 0x7e0000001000n));
      s.fds = [
        { fd: 0, kind: 'tty', target: '/dev/pts/0', flags: 2, pos: 0n, cloexec: false },
        { fd: 3, kind: 'file', target: data, flags: 0, pos: 2n, cloexec: false, inode: 0 },
      ];
      return s;
    };
    const ok = preflightState(base(), redirect);
    assert.equal(ok.ok, true, JSON.stringify(ok.items.filter((i) => !i.ok)));
    for (const i of ok.items) assert.ok(i.label && i.reason, 'every item has a label and a reason');
    assert.match(ok.items.find((i) => i.id === 'fds')!.reason, /output goes to \/tmp\/stasis-restore-test.log/);

    const fail = (s: ReturnType<typeof base>, id: string, re: RegExp): void => {
      const r = preflightState(s, redirect);
      assert.equal(r.ok, false);
      const it = r.items.find((i) => i.id === id)!;
      assert.equal(it.ok, false, `${id} should fail`);
      assert.match(it.reason, re);
      assert.ok(it.fix && it.fix.length > 10, `${id} has a fix`);
    };
    const mt = base();
    mt.threads.push({ ...mt.threads[0]!, tid: 1000000 });
    assert.equal(preflightState(mt, redirect).items.find((i) => i.id === 'threads')!.ok, true, 'two threads restore');
    const noLeader = base();
    noLeader.threads = [{ ...noLeader.threads[0]!, tid: 1000000 }];
    fail(noLeader, 'threads', /main thread .* had exited/);
    const noFpu = base();
    noFpu.threads.push({ ...noFpu.threads[0]!, tid: 1000001, xstate: '' });
    fail(noFpu, 'threads', /no FPU\/vector registers for thread\(s\) 1000001/);
    const k = base();
    k.kernel.release = '5.10.0-old';
    fail(k, 'kernel', /5\.10\.0-old/);
    const v = base();
    v.kernel.vdsoSha256 = '00';
    fail(v, 'vdso', /\[vdso\] image differs/);
    const fdGone = base();
    fdGone.fds.push({ fd: 4, kind: 'file', target: join(dir, 'gone.txt'), flags: 0, pos: 0n, cloexec: false });
    fail(fdGone, 'fds', /fd 4: .*gone\.txt no longer exists/);
    const sock = base();
    sock.fds.push({ fd: 5, kind: 'socket', target: 'socket:[123]', flags: 2, pos: 0n, cloexec: false });
    fail(sock, 'fds', /fd 5 is a socket connected outside the process .*UNIX socketpairs whose both ends the process holds, and TCP and UDP sockets that are not connections/);
    const del = base();
    del.fds.push({ fd: 6, kind: 'deleted-file', target: '/tmp/x (deleted)', flags: 2, pos: 0n, cloexec: false });
    fail(del, 'fds', /fd 6 is an open file that was already deleted/);
    const cwd = base();
    cwd.cwd = join(dir, 'no-such-dir');
    fail(cwd, 'cwd', /no-such-dir no longer exists/);
    const range = base();
    range.mappings.push(anonMapping(0x800000000000n, 0x800000001000n));
    fail(range, 'address-ranges', /800000000000/);
    const special = base();
    special.mappings.push(anonMapping(0x7e1000000000n, 0x7e1000001000n, 'other-special', '[uprobes]'));
    fail(special, 'special-mappings', /\[uprobes\]/);

    // Facts of the machine, as another machine would report them.
    const host = hostFacts();
    const sealed = preflightState(base(), redirect, { ...host, sealedSystemMappings: true });
    assert.match(sealed.items.find((i) => i.id === 'sealed-mappings' && !i.ok)!.reason, /seals \[vdso\]\/\[vvar\]/);
    const unpriv = preflightState(base(), redirect, { ...host, euid: 1000, capEff: 0n });
    const priv = unpriv.items.find((i) => i.id === 'privileges')!;
    assert.equal(priv.ok, false);
    assert.match(priv.fix!, /root|cap_sys_resource/);
    assert.match(unpriv.items.find((i) => i.id === 'pid')!.reason, /needs CAP_CHECKPOINT_RESTORE: the restored process gets a new PID/);
    assert.match(unpriv.items.find((i) => i.id === 'pid')!.reason, /may not recognise itself under a new one/, 'a new PID comes with what it can break');

    // A process of another user must not come back with the engine's (root's) rights.
    const other = base();
    other.uid = 1000;
    other.gid = 1000;
    fail(other, 'credentials', /ran as uid 1000, gid 1000; restored now it would run as uid 0, gid 0/);
    const otherGroup = base();
    otherGroup.gid = 65534;
    fail(otherGroup, 'credentials', /gid 65534/);
    const setuid = base();
    setuid.ids = { uid: [1000, 0, 0, 0], gid: [0, 0, 0, 0] };
    fail(setuid, 'credentials', /uids 1000\/0\/0\/0/);
    const unknownIds = base();
    unknownIds.uid = -1;
    fail(unknownIds, 'credentials', /does not record which user/);
    assert.equal(preflightState(other, redirect, { ...host, euid: 1000, egid: 1000 }).items.find((i) => i.id === 'credentials')!.ok, true, 'restored by its own user: allowed');

    const lim = base();
    lim.rlimits = [{ resource: 7, name: 'NOFILE', cur: 1024n, max: 1n << 40n }];
    const limR = preflightState(lim, redirect, { ...host, capEff: host.capEff & ~(1n << 24n), hardLimits: host.hardLimits.map((v, i) => (i === 7 ? 4096n : v)) });
    assert.match(limR.items.find((i) => i.id === 'rlimits' && !i.ok)!.reason, /NOFILE 1099511627776 > 4096/);

    // Files changed after the checkpoint: the state still describes the old ones.
    const before = base();
    appendFileSync(lib, 'x');
    fail(before, 'mapped-files', /lib\.so changed size/);
    const exeBefore = base();
    appendFileSync(exe, 'x');
    fail(exeBefore, 'exe', /prog changed size/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
