/**
 * Looking inside checkpoints of a real process: the inspect-plant fixture plants known strings at
 * known addresses (one across a page boundary, one across two adjacent mappings) and changes them
 * between checkpoints. grep must say where and in which checkpoints each is, reading each distinct
 * stored page once; mem must return the bytes /proc/PID/mem held at checkpoint time; inspect must
 * show the saved state with the environment masked; bad input must fail with a clear error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { grepCheckpoints, openImage } from '../../electron/engine/inspect';
import { invoke } from '../../electron/api/invoke';
import type { HandlerContext } from '../../electron/api/context';
import { tempDir, tempStore, waitFor, waitForFile } from '../capture/common';

const PAGE = 4096n;

function info(dir: string): { a: bigint; b: bigint; gen: number } {
  const txt = readFileSync(join(dir, 'info.txt'), 'utf8');
  const get = (k: string): string => new RegExp(`^${k} (\\S+)$`, 'm').exec(txt)![1]!;
  return { a: BigInt(`0x${get('a')}`), b: BigInt(`0x${get('b')}`), gen: Number(get('gen')) };
}

function procMem(pid: number, addr: bigint, len: number): Buffer {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    const b = Buffer.alloc(len);
    assert.equal(readSync(fd, b, 0, len, Number(addr)), len);
    return b;
  } finally { closeSync(fd); }
}

describe('inspect: grep, mem and inspect over a chain of real checkpoints', () => {
  let target: DetachedProcess;
  let side: ReturnType<typeof tempDir>;
  let st: ReturnType<typeof tempStore>;
  let a = 0n;
  let b = 0n;
  const ids: number[] = [];
  /** Regions A and B (6 pages) as /proc/PID/mem showed them right after each checkpoint. */
  const truth: Buffer[] = [];
  let ctx: HandlerContext;
  const events: { event: string; payload: unknown }[] = [];

  before(async () => {
    side = tempDir('inspect-plant');
    st = tempStore();
    target = spawnDetached([buildFixture('inspect-plant'), side.dir], { env: { ...process.env, STASIS_TEST_SECRET: 'hunter2-do-not-show' } });
    await waitForFile(join(side.dir, 'info.txt'));
    ({ a, b } = info(side.dir));
    for (let gen = 0; gen < 3; gen++) {
      if (gen > 0) {
        target.kill('SIGUSR1');
        await waitFor(`generation ${gen}`, () => info(side.dir).gen === gen);
      }
      ids.push(checkpoint(st.store, target.pid, { full: gen === 0 }).id);
      truth.push(procMem(target.pid, a, 6 * 4096));
    }
    ctx = { storeDir: st.dir, store: () => st.store, emit: (event, payload) => events.push({ event, payload }), callId: 't1' };
  });
  after(() => {
    target?.kill();
    st?.cleanup();
    side?.cleanup();
  });

  test('the fixture laid out two adjacent mappings and the strings where it says', () => {
    assert.equal(b, a + 4n * PAGE);
    assert.equal(truth[0]!.toString('latin1', 4096 - 9, 4096 + 9), 'SPAN-PAGE-BOUNDARY');
    assert.equal(truth[1]!.toString('latin1', 4 * 4096 - 10, 4 * 4096 + 11), 'SPAN-MAPPING-BOUNDARY');
    const maps = st.store.getState(ids[2]!).mappings;
    assert.ok(maps.some((m) => m.start === a && m.end === b && m.perms === 'rw-p'), 'A is its own mapping');
    assert.ok(maps.some((m) => m.start === b && m.perms === 'r--p'), 'B is its own mapping, right after A');
  });

  test('a string across a page boundary: found, first and last checkpoint where it is present', () => {
    const r = grepCheckpoints(st.store, { pattern: 'SPAN-PAGE-BOUNDARY', ids });
    assert.equal(r.matches.length, 1);
    const m = r.matches[0]!;
    assert.equal(m.address, a + PAGE - 9n);
    assert.deepEqual(m.checkpoints, [ids[0], ids[1]]);
    assert.equal(m.first, ids[0]);
    assert.equal(m.last, ids[1]);
    assert.equal(m.mapping?.start, a);
    assert.equal(m.endMapping, undefined);
    assert.equal(m.context?.bytes.toString('latin1'), truth[0]!.toString('latin1', 4096 - 9 - 16, 4096 + 9 + 16));
  });

  test('a string across two adjacent mappings: found, with both mappings named', () => {
    const r = grepCheckpoints(st.store, { pattern: 'SPAN-MAPPING-BOUNDARY', ids });
    assert.equal(r.matches.length, 1);
    const m = r.matches[0]!;
    assert.equal(m.address, b - 10n);
    assert.deepEqual(m.checkpoints, [ids[1], ids[2]]);
    assert.equal(m.mapping?.start, a);
    assert.equal(m.endMapping?.start, b);
    assert.equal(m.endMapping?.perms, 'r--p');
    // The same with a regex (its match also crosses both boundaries).
    const re = grepCheckpoints(st.store, { pattern: 'SPAN-[A-Z]+-BOUNDARY', regex: true, ids, context: 0 });
    assert.deepEqual(re.matches.map((x) => [x.address, x.bytes.toString(), x.first, x.last]), [
      [a + PAGE - 9n, 'SPAN-PAGE-BOUNDARY', ids[0], ids[1]],
      [b - 10n, 'SPAN-MAPPING-BOUNDARY', ids[1], ids[2]],
    ]);
  });

  test('a value that changes: each version in its own checkpoint; hex and ignore-case find the same bytes', () => {
    const r = grepCheckpoints(st.store, { pattern: 'value=gen\\d', regex: true, ids });
    assert.deepEqual(r.matches.map((m) => [m.address, m.bytes.toString(), m.checkpoints]), [0, 1, 2].map((g) => [a + 2n * PAGE + 50n, `value=gen${g}`, [ids[g]]]));
    const hex = grepCheckpoints(st.store, { pattern: Buffer.from('value=gen1').toString('hex'), hex: true, ids });
    assert.deepEqual(hex.matches.map((m) => [m.address, m.checkpoints]), [[a + 2n * PAGE + 50n, [ids[1]]]]);
    const ci = grepCheckpoints(st.store, { pattern: 'VALUE=GEN2', ignoreCase: true, ids });
    assert.deepEqual(ci.matches.map((m) => [m.address, m.checkpoints]), [[a + 2n * PAGE + 50n, [ids[2]]]]);
  });

  test('each distinct stored page is read once: a page shared by all three checkpoints counts once', () => {
    const one = grepCheckpoints(st.store, { pattern: 'needle-alpha', ids: [ids[0]!] });
    const all = grepCheckpoints(st.store, { pattern: 'needle-alpha', ids });
    assert.equal(all.matches.length, 1);
    assert.deepEqual(all.matches[0]!.checkpoints, ids);
    assert.equal(all.matches[0]!.address, a + 100n);
    assert.equal(all.stats.logicalBytes, ids.reduce((n, id) => n + st.store.layout(id).reduce((s, e) => s + e.count * 4096, 0), 0));
    // Three checkpoints hold three times the memory; the distinct stored pages (plus one zero page
    // when any page is zero) are what is read, each once.
    const distinct = new Set<string>();
    let zero = 0;
    for (const id of ids) for (const e of st.store.layout(id)) {
      if (e.file === null) zero = 1;
      else for (let i = 0; i < e.count; i++) distinct.add(`${e.file}:${e.page + i}`);
    }
    assert.ok(all.stats.logicalBytes > 2.5 * one.stats.logicalBytes);
    assert.equal(all.stats.distinctPages, distinct.size + zero);
    assert.ok(distinct.size * 4096 < all.stats.logicalBytes * 0.75, `${distinct.size} distinct pages of ${all.stats.logicalBytes / 4096}`);
    assert.equal(all.stats.bytesScanned, (distinct.size + zero) * 4096 + all.stats.boundaries * 2 * ('needle-alpha'.length - 1));
  });

  test('mem: the image of each checkpoint equals /proc/PID/mem at checkpoint time, across both mappings', () => {
    for (let i = 0; i < ids.length; i++) {
      const img = openImage(st.store, ids[i]!);
      try {
        const r = img.read(a, 6 * 4096);
        assert.ok(r.bytes.equals(truth[i]!), `checkpoint ${ids[i]} differs from /proc/PID/mem`);
        assert.deepEqual(r.ranges.map((x) => x.source), ['saved']);
        assert.deepEqual(r.mappings.map((m) => m.start), [a, b]);
        // An unaligned read across the page boundary.
        assert.ok(img.read(a + PAGE - 9n, 18).bytes.equals(truth[i]!.subarray(4096 - 9, 4096 + 9)));
      } finally { img.close(); }
    }
  });

  test('mem: a file-backed page never modified is read from the file, and said so; unmapped names the neighbours', async () => {
    const state = st.store.getState(ids[2]!);
    const text = state.mappings.find((m) => m.kind === 'file-private' && m.perms === 'r-xp' && m.path === state.exe)!;
    const r = await invoke('inspect.mem', { id: ids[2], address: `0x${text.start.toString(16)}`, length: 64 }, ctx);
    assert.ok(r.ok, JSON.stringify(r));
    const v = r.value as { data: string; ranges: { source: string; note?: string }[] };
    assert.deepEqual(v.ranges.map((x) => x.source), ['file']);
    assert.equal(v.ranges[0]!.note, state.exe);
    const fd = openSync(state.exe, 'r');
    const want = Buffer.alloc(64);
    readSync(fd, want, 0, 64, Number(text.offset));
    closeSync(fd);
    assert.equal(v.data, want.toString('hex'));
    const bad = await invoke('inspect.mem', { id: ids[2], address: '0x10', length: 4 }, ctx);
    assert.ok(!bad.ok);
    assert.equal(bad.error.code, 'NOT_FOUND');
    assert.match(bad.error.message, /0x10 is not mapped in checkpoint \d+ \(nothing below; above: 0x[0-9a-f]+-0x[0-9a-f]+ r--p /);
  });

  test('inspect: threads, fds with kinds, sockets, signal handlers; environment masked unless showEnv', async () => {
    const r = await invoke('inspect.details', { id: ids[2] }, ctx);
    assert.ok(r.ok, JSON.stringify(r));
    const d = r.value as { environ: string[]; environMasked: boolean; threads: { tid: number; rip: string; registers: Record<string, string> }[]; fds: { fd: number; kind: string; target: string }[]; sockets: { description: string }[]; signals: { handlers: { signal: string }[] }; cmdline: string[]; pid: number };
    assert.equal(d.pid, target.pid);
    assert.ok(d.environ.includes('STASIS_TEST_SECRET=****'));
    assert.ok(!JSON.stringify(d).includes('hunter2'), 'no environment value anywhere in the output');
    assert.equal(d.environMasked, true);
    const state = st.store.getState(ids[2]!);
    assert.equal(d.threads[0]!.tid, target.pid);
    assert.equal(d.threads[0]!.rip, `0x${state.threads[0]!.regs[16]!.toString(16)}`);
    assert.equal(Object.keys(d.threads[0]!.registers).length, 27);
    assert.ok(d.fds.some((f) => f.kind === 'file' && f.target === join(side.dir, 'open.txt')));
    assert.equal(d.fds.filter((f) => f.kind === 'socket').length, 2);
    assert.ok(d.sockets.every((s) => /unix stream socketpair/.test(s.description)), JSON.stringify(d.sockets));
    assert.ok(d.signals.handlers.some((h) => h.signal === 'SIGUSR1'));
    assert.deepEqual(d.cmdline.slice(1), [side.dir]);
    const shown = await invoke('inspect.details', { id: ids[2], showEnv: true }, ctx);
    assert.ok(shown.ok && (shown.value as { environ: string[] }).environ.includes('STASIS_TEST_SECRET=hunter2-do-not-show'));
  });

  test('inspect.grep through the API: a process\'s checkpoints, streamed hits, progress to the end', async () => {
    events.length = 0;
    const r = await invoke('inspect.grep', { pattern: 'SPAN-MAPPING-BOUNDARY', targetId: st.store.get(ids[0]!)!.targetId }, ctx);
    assert.ok(r.ok, JSON.stringify(r));
    const v = r.value as { matches: { address: string; first: number; last: number; endMapping?: { start: string } }[] };
    assert.deepEqual(v.matches.map((m) => [m.address, m.first, m.last, m.endMapping?.start]), [[`0x${(b - 10n).toString(16)}`, ids[1], ids[2], `0x${b.toString(16)}`]]);
    const hits = events.filter((e) => e.event === 'inspect.hit').map((e) => e.payload as { callId: string; checkpoints: number[] });
    assert.ok(hits.length >= 1 && hits.every((h) => h.callId === 't1'));
    assert.deepEqual([...new Set(hits.flatMap((h) => h.checkpoints))].sort((x, y) => x - y), [ids[1], ids[2]]);
    const prog = events.filter((e) => e.event === 'op.progress').map((e) => e.payload as { op: string; done: number; total: number });
    assert.ok(prog.length >= 1 && prog.every((p) => p.op === 'search'));
    assert.equal(prog[prog.length - 1]!.done, prog[prog.length - 1]!.total);
  });

  test('a cancelled search stops with CANCELLED; the match limit truncates', () => {
    const ac = new AbortController();
    ac.abort();
    assert.throws(() => grepCheckpoints(st.store, { pattern: 'x', ids, signal: ac.signal }), { code: 'CANCELLED' });
    const r = grepCheckpoints(st.store, { pattern: 'aaaa', ids, maxMatches: 5, context: 0 });
    assert.equal(r.matches.length, 5);
    assert.equal(r.truncated, true);
  });

  test('bad input: clear errors, nothing searched', async () => {
    const maps = [...st.store.getState(ids[0]!).mappings].sort((x, y) => (x.start < y.start ? -1 : 1));
    const beforeGap = maps.find((m, i) => maps[i + 1] && maps[i + 1]!.start > m.end)!;
    const cases: [string, unknown, string, RegExp][] = [
      ['inspect.grep', { pattern: '', ids }, 'INVALID_INPUT', /pattern/],
      ['inspect.grep', { pattern: 'x' }, 'INVALID_INPUT', /either checkpoint ids or a targetId/],
      ['inspect.grep', { pattern: 'x', ids, targetId: 1 }, 'INVALID_INPUT', /either checkpoint ids or a targetId/],
      ['inspect.grep', { pattern: 'zz', hex: true, ids }, 'INVALID_INPUT', /not hex bytes/],
      ['inspect.grep', { pattern: '(', regex: true, ids }, 'INVALID_INPUT', /not a valid regular expression/],
      ['inspect.grep', { pattern: 'x', ids: [999999] }, 'NOT_FOUND', /Checkpoint 999999 does not exist/],
      ['inspect.grep', { pattern: 'x', targetId: 9999 }, 'NOT_FOUND', /9999 does not exist/],
      ['inspect.grep', { pattern: 'x'.repeat(5000), ids }, 'INVALID_INPUT', /at most 4096 bytes/],
      ['inspect.mem', { id: ids[0], address: '12345', length: 4 }, 'INVALID_INPUT', /address in hex/],
      ['inspect.mem', { id: ids[0], address: `0x${a.toString(16)}`, length: 4 << 20 }, 'INVALID_INPUT', /write them to a file/],
      ['inspect.mem', { id: ids[0], address: `0x${(beforeGap.end - 4n).toString(16)}`, length: 4096 }, 'NOT_FOUND', new RegExp(`0x${beforeGap.end.toString(16)} \\(inside .*\\) is not mapped`)],
      ['inspect.details', { id: 999999 }, 'NOT_FOUND', /Checkpoint 999999 does not exist/],
    ];
    for (const [name, input, code, msg] of cases) {
      const r = await invoke(name, input, ctx);
      assert.ok(!r.ok, `${name} ${JSON.stringify(input).slice(0, 80)} must fail`);
      assert.equal(r.error.code, code, r.error.message);
      assert.match(r.error.message, msg);
    }
  });
});
