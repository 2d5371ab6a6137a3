// The addon's threaded page fill against a real process: bytes from a file at offsets and from
// buffers land exactly where the jobs say, by process_vm_writev into writable memory and through
// /proc/PID/mem into read-only memory; a job naming a source or method it was not given is refused
// before anything is copied. (Both fill executors are also run end to end by memory-matrix.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeNative } from '../../electron/engine/store/native-addon';
import { buildFixture } from '../helpers/fixtures';

const skip = !storeNative?.fill && 'the native addon is not built here';

test('fill puts file and buffer bytes at their addresses, writable and read-only, on several threads', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-fill-'));
  const child = spawn(buildFixture('fill-target'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
      child.once('exit', () => reject(new Error('fill-target exited')));
    });
    const [, rwHex, roHex] = /^ready ([0-9a-f]+) ([0-9a-f]+)/.exec(line)!;
    const rw = BigInt(`0x${rwHex}`), ro = BigInt(`0x${roHex}`);
    const fileBytes = randomBytes(3 << 20);
    const file = join(dir, 'seg');
    writeFileSync(file, Buffer.concat([Buffer.alloc(100), fileBytes])); // data at an unaligned offset, as after a block header
    const buf = randomBytes(2 << 20);
    const fd = openSync(file, 'r');
    const mem = openSync(`/proc/${child.pid}/mem`, 'r+');
    try {
      // rw: [0, 3 MiB) from the file in 3 jobs, [3, 4 MiB) from buf at 1 MiB; ro: [0, 1 MiB) from buf at 0 through /proc/PID/mem.
      const jobs = new BigUint64Array([
        rw, 1n << 20n, 1n, 0n, 0n, 100n,
        rw + (1n << 20n), 1n << 20n, 1n, 0n, 0n, 100n + (1n << 20n),
        rw + (2n << 20n), 1n << 20n, 1n, 0n, 0n, 100n + (2n << 20n),
        rw + (3n << 20n), 1n << 20n, 1n, 1n, 0n, 1n << 20n,
        ro, 1n << 20n, 2n, 1n, 0n, 0n,
      ]);
      storeNative!.fill!(child.pid!, -1, mem, jobs, [buf], Int32Array.from([fd]), 3);
      const got = Buffer.alloc(4 << 20);
      assert.equal(readSync(mem, got, 0, got.length, Number(rw)), got.length);
      assert.ok(got.subarray(0, 3 << 20).equals(fileBytes), 'the file bytes are at rw');
      assert.ok(got.subarray(3 << 20).equals(buf.subarray(1 << 20)), 'the buffer bytes are at rw + 3 MiB');
      const gotRo = Buffer.alloc(1 << 20);
      assert.equal(readSync(mem, gotRo, 0, gotRo.length, Number(ro)), gotRo.length);
      assert.ok(gotRo.equals(buf.subarray(0, 1 << 20)), 'the read-only mapping holds the buffer bytes');
      // A job past the end of its file fails with the job's address, and nothing is claimed done.
      const past = new BigUint64Array([rw, 1n << 20n, 1n, 0n, 0n, BigInt(5 << 20)]);
      assert.throws(() => storeNative!.fill!(child.pid!, -1, mem, past, [], Int32Array.from([fd]), 2), new RegExp(`reading a segment file for the page at 0x${rwHex}`));
    } finally {
      closeSync(fd);
      closeSync(mem);
    }
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fill refuses a job whose source or method it was not given, before copying anything', { skip }, () => {
  const noBuffer = new BigUint64Array([0x10000n, 4096n, 1n, 1n, 3n, 0n]); // buffers[3] of none
  assert.throws(() => storeNative!.fill!(process.pid, -1, -1, noBuffer, [], new Int32Array(0), 2), /names a source or method it may not use/);
  const pastBuffer = new BigUint64Array([0x10000n, 8192n, 1n, 1n, 0n, 0n]); // 8 KiB of a 4 KiB buffer
  assert.throws(() => storeNative!.fill!(process.pid, -1, -1, pastBuffer, [Buffer.alloc(4096)], new Int32Array(0), 2), /names a source or method it may not use/);
  const uffdWithout = new BigUint64Array([0x10000n, 4096n, 0n, 1n, 0n, 0n]); // UFFDIO_COPY with no userfaultfd
  assert.throws(() => storeNative!.fill!(process.pid, -1, -1, uffdWithout, [Buffer.alloc(4096)], new Int32Array(0), 2), /names a source or method it may not use/);
});
