/**
 * The capture API as every client reaches it (handlers through the contract's zod schemas), and the
 * kernel probe: launch puts stdio in a log in the store and leaves a running, untraced program;
 * processes.list says which processes can be checkpointed and why not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { captureCalls } from '../../shared/contract/capture';
import { captureHandlers } from '../../electron/api/handlers/capture';
import type { HandlerContext } from '../../electron/api/context';
import { probeKernelFeatures, mmapLocal, unmapLocal, copyToAddr, copyFromAddr } from '../../electron/engine/native';
import { openPagemap, closePagemap, scanRanges } from '../../electron/engine/proc';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { tempDir, tempStore, waitFor, procStatus } from './common';


function ctx(storeDir: string, store?: ReturnType<typeof tempStore>['store']): HandlerContext & { events: unknown[] } {
  const events: unknown[] = [];
  return {
    storeDir,
    store: () => {
      if (!store) throw new Error('no store in this test');
      return store;
    },
    emit: (event, payload) => events.push({ event, payload }),
    events,
  };
}

async function call<N extends keyof typeof captureCalls>(name: N, input: unknown, c: HandlerContext): Promise<unknown> {
  const spec = captureCalls[name];
  const parsed = spec.input.parse(input);
  const out = await (captureHandlers[name] as (i: unknown, c: HandlerContext) => unknown)(parsed, c);
  return spec.output.parse(out);
}

test('capture.launch: program runs untraced with stdio in a log in the store, and can be checkpointed', async () => {
  const st = tempStore();
  const side = tempDir('capture-launch');
  const bin = buildFixture('capture-sleeper');
  const c = ctx(st.dir, st.store);
  const r = (await call('capture.launch', { argv: [bin, join(side.dir, 'ready')], name: 'sleepy', cwd: side.dir }, c)) as { pid: number; log: string; name: string };
  try {
    assert.equal(r.name, 'sleepy');
    assert.ok(r.log.startsWith(join(st.dir, 'logs')));
    // The fixture writes the file in more than one step: wait for the whole line.
    await waitFor('ready file', () => existsSync(join(side.dir, 'ready')) && readFileSync(join(side.dir, 'ready'), 'utf8').endsWith('\n'));
    assert.equal(readFileSync(join(side.dir, 'ready'), 'utf8'), `ready ${r.pid}\n`, 'same pid as reported (the shell exec-ed it)');
    assert.deepEqual(readFileSync(`/proc/${r.pid}/cmdline`, 'utf8').split('\0').slice(0, 2), [bin, join(side.dir, 'ready')]);
    const ps = procStatus(r.pid)!;
    assert.equal(ps.tracerPid, 0);
    assert.match(ps.state, /[SR]/);
    assert.equal(readFileSync(`/proc/${r.pid}/comm`, 'utf8').trim(), 'capture-sleeper');
    // Only stdin, stdout and stderr: nothing of the engine's (or of whatever started it) leaks in.
    assert.deepEqual(readdirSync(`/proc/${r.pid}/fd`).map(Number).sort((a, b) => a - b), [0, 1, 2]);
    const named = st.store.listTargets().filter((t) => t.name === 'sleepy');
    assert.deepEqual(named.map((t) => [t.pid, t.exe]), [[r.pid, bin]], 'a named launch is a store target at once (schedules by name find it)');
    const cp = (await call('capture.checkpoint', { pid: r.pid, label: 'launched', name: 'sleepy' }, c)) as { id: number; mode: string };
    assert.equal(cp.mode, 'full');
    assert.equal(st.store.get(cp.id)?.label, 'launched');
    assert.deepEqual(c.events.map((e) => (e as { event: string }).event), ['capture.done']);
  } finally {
    try {
      process.kill(r.pid, 'SIGKILL');
    } catch {
      // gone
    }
    st.cleanup();
    side.cleanup();
  }
});

test('capture.launch refuses a program that does not exist, with the log to look at', async () => {
  const st = tempStore();
  try {
    const r = (await call('capture.launch', { argv: ['/nonexistent/prog'] }, ctx(st.dir))) as { pid: number; log: string };
    // The shell starts, then exec fails: the program exits at once with 127 and says so in the log.
    await waitFor('exec failure in the log', () => existsSync(r.log) && /not found|No such file/.test(readFileSync(r.log, 'utf8')));
  } finally {
    st.cleanup();
  }
});

test('capture.launch passes empty arguments through; an empty program or a NUL byte is refused, naming what is wrong', async () => {
  const st = tempStore();
  const side = tempDir('capture-launch-args');
  try {
    const out = join(side.dir, 'args');
    const r = (await call('capture.launch', { argv: ['/bin/sh', '-c', 'printf "[%s]" "$@" > "$0"', out, '', 'x', ''] }, ctx(st.dir))) as { pid: number };
    await waitFor('the arguments written', () => existsSync(out) && readFileSync(out, 'utf8').length > 0);
    assert.equal(readFileSync(out, 'utf8'), '[][x][]');
    assert.ok(r.pid > 0);
    await assert.rejects(call('capture.launch', { argv: ['', 'x'] }, ctx(st.dir)), /program to start is an empty string/);
    await assert.rejects(call('capture.launch', { argv: ['/bin/true', 'a\0b'] }, ctx(st.dir)), /NUL byte/);
  } finally {
    st.cleanup();
    side.cleanup();
  }
});

test('capture.checkpoint warns at once when restore would refuse the checkpoint (here: a listening TCP socket), and not otherwise (several threads restore)', async () => {
  const st = tempStore();
  const side = tempDir('capture-api-threads');
  const threads = spawnDetached([buildFixture('capture-threads'), side.dir, '2']);
  const ready = join(side.dir, 'listening');
  const listener = spawnDetached(['python3', '-c', `import socket, time
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen()
open(${JSON.stringify(ready)}, 'w').close()
time.sleep(1000)`]);
  try {
    await waitFor('threads.txt', () => existsSync(join(side.dir, 'threads.txt')) && readFileSync(join(side.dir, 'threads.txt'), 'utf8').includes('ready'));
    await waitFor('listening', () => existsSync(ready));
    const c = ctx(st.dir, st.store);
    const tcp = (await call('capture.checkpoint', { pid: listener.pid }, c)) as { warnings: string[] };
    assert.ok(tcp.warnings.some((w) => /^restore would refuse it here and now: .*listening TCP socket/i.test(w)), tcp.warnings.join('; '));
    const mt = (await call('capture.checkpoint', { pid: threads.pid }, c)) as { warnings: string[] };
    assert.ok(!mt.warnings.some((w) => /restore would refuse/.test(w)), mt.warnings.join('; '));
  } finally {
    threads.kill();
    listener.kill();
    st.cleanup();
    side.cleanup();
  }
});

test('processes.list: our target is checkpointable, kernel threads, zombies and ourselves are not', async () => {
  const side = tempDir('capture-ps');
  const t = spawnDetached([buildFixture('capture-zombie'), join(side.dir, 'z')]);
  try {
    const z = Number((await waitFor('zombie pid', () => existsSync(join(side.dir, 'z')) && readFileSync(join(side.dir, 'z'), 'utf8').trim())) as string);
    const out = (await call('processes.list', { all: true }, ctx(side.dir))) as { processes: { pid: number; checkpointable: boolean; reason: string | null; comm: string }[] };
    const by = (pid: number) => out.processes.find((p) => p.pid === pid);
    assert.equal(by(t.pid)?.checkpointable, true);
    assert.equal(by(t.pid)?.comm, 'capture-zombie');
    assert.match(by(z)?.reason ?? '', /zombie/);
    assert.match(by(2)?.reason ?? '', /kernel thread/);
    assert.match(by(process.pid)?.reason ?? '', /Stasis itself/);
    const mine = (await call('processes.list', {}, ctx(side.dir))) as { processes: { pid: number }[] };
    assert.ok(!mine.processes.some((p) => p.pid === 2), 'kernel threads hidden by default');
  } finally {
    t.kill();
    side.cleanup();
  }
});

test('probeKernelFeatures, and PAGEMAP_SCAN agrees with raw pagemap entries page by page', () => {
  const f = probeKernelFeatures(true);
  assert.equal(f.ptrace.usable, true);
  assert.ok(f.xstateBytes !== null && f.xstateBytes >= 512 && f.xstateBytes % 64 === 0, `xstate ${f.xstateBytes}`);
  const base = mmapLocal(16 * 4096);
  const pm = openPagemap(process.pid);
  try {
    for (const i of [0, 1, 5, 6, 7, 12]) copyToAddr(base + BigInt(i * 4096), Buffer.from([i + 1]));
    copyFromAddr(Buffer.alloc(1), base + 9n * 4096n); // read only (the zero page, where the kernel uses it)
    const pages = (useScan: boolean): string[] =>
      scanRanges(pm, base, base + 16n * 4096n, useScan).flatMap((r) => {
        const out: string[] = [];
        for (let a = r.start; a < r.end; a += 4096n) out.push(`${(a - base) / 4096n}${r.file ? 'f' : ''}`);
        return out;
      });
    const raw = pages(false);
    assert.deepEqual(raw.filter((p) => p !== '9'), ['0', '1', '5', '6', '7', '12']);
    if (f.pagemapScan) assert.deepEqual(pages(true), raw);
  } finally {
    closePagemap(pm);
    unmapLocal(base, 16 * 4096);
  }
});
