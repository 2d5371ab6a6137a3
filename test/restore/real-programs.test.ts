// Real multi-threaded programs, not written for Stasis: python3 with threads, a Node.js script
// (node runs 7 threads: V8 platform workers and libuv's pool) and `xz -T2`. Each is interrupted
// mid-work by a checkpoint that kills it, restored, and its output compared byte for byte with an
// uninterrupted run of the same command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { restore } from '../../electron/engine/restore';
import { isAlive, killQuietly, waitFor, withStore } from './helpers';

/** CPU time (user + system) the process has used, in clock ticks. */
function cpuTicks(pid: number): number {
  let st: string;
  try { st = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { throw new Error(`process ${pid} ended before it could be interrupted: give it more work`); }
  const f = st.split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

function threadCount(pid: number): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/**
 * Runs `sh -c "exec CMD > OUT"` once to the end (the reference), then again, checkpoints it with
 * --kill after `ticks` of CPU time, restores it and waits for it to finish; returns both outputs.
 */
async function interrupted(dir: string, cmd: string, ticks: number, minThreads: number): Promise<{ ref: Buffer; got: Buffer; threads: number }> {
  const refOut = join(dir, 'ref.out');
  const ref = spawnDetached(['sh', '-c', `exec ${cmd} > ${refOut} 2>${join(dir, 'ref.err')} </dev/null`], { cwd: dir });
  assert.equal((await ref.waitExit(120_000)).code, 0, `${cmd}: reference run`);
  return withStore(async (store) => {
    const out = join(dir, 'run.out');
    const t = spawnDetached(['sh', '-c', `exec ${cmd} > ${out} 2>${join(dir, 'run.err')} </dev/null`], { cwd: dir });
    let pid: number | undefined;
    try {
      await waitFor(`${cmd} to work for ${ticks} ticks`, () => cpuTicks(t.pid) >= ticks, 60_000);
      const threads = threadCount(t.pid);
      assert.ok(threads >= minThreads, `${cmd}: ${threads} threads at the checkpoint`);
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      assert.notDeepEqual(readFileSync(out), readFileSync(refOut), `${cmd}: interrupted before it finished`);
      const r = restore(store, c.id, { log: join(dir, 'restore.log') });
      pid = r.pid;
      assert.equal(r.threads, c.threads);
      await waitFor(`${cmd}: the restored process to finish`, () => !isAlive(r.pid), 120_000);
      return { ref: readFileSync(refOut), got: readFileSync(out), threads };
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
}

async function inTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  return withStore(async (_s, dir) => fn(dir));
}

test('python3 with four threads hashing, interrupted by a checkpoint, restored: the same output as an uninterrupted run', async () => {
  await inTemp(async (dir) => {
    writeFileSync(join(dir, 'work.py'), `import hashlib, threading
res = [None] * 4
def work(i):
    h = hashlib.sha256(str(i).encode()).digest()
    for k in range(2000000):
        h = hashlib.sha256(h).digest()
    res[i] = h.hex()
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("\\n".join(res))
`);
    const r = await interrupted(dir, 'python3 work.py', 40, 5);
    assert.equal(r.got.toString(), r.ref.toString());
    assert.equal(r.ref.toString().trim().split('\n').length, 4);
  });
});

test('a Node.js script (several runtime threads, epoll, eventfds, pipes) interrupted by a checkpoint, restored: the same output', async () => {
  await inTemp(async (dir) => {
    writeFileSync(join(dir, 'work.js'), `const crypto = require('node:crypto');
let h = Buffer.from('seed'), k = 0;
function step() {
  for (let j = 0; j < 2000; j++, k++) h = crypto.createHash('sha256').update(h).digest();
  if (k < 2400000) setImmediate(step); else console.log(h.toString('hex'), k);
}
setTimeout(step, 10);
`);
    const r = await interrupted(dir, `${process.execPath} work.js`, 80, 5);
    assert.equal(r.got.toString(), r.ref.toString());
  });
});

test('xz -T2 compressing, interrupted by a checkpoint, restored: byte-identical .xz', async () => {
  await inTemp(async (dir) => {
    // Compressible but not trivial text (random words: both runs read the same file), several 3 MiB blocks so both threads work.
    const words = Array.from({ length: 3000 }, () => randomBytes(1 + randomInt(5)).toString('hex'));
    const parts: string[] = [];
    for (let i = 0; i < 1_800_000; i++) parts.push(words[randomInt(words.length)]! + (i % 12 ? ' ' : '\n'));
    writeFileSync(join(dir, 'in.txt'), parts.join(''));
    const r = await interrupted(dir, 'xz -T2 -3 -c in.txt', 40, 2);
    assert.ok(r.ref.length > 1000);
    assert.ok(r.got.equals(r.ref), `xz output differs (${r.got.length} vs ${r.ref.length} bytes)`);
  });
});
