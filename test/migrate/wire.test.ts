import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';

/** The frames' bytes as a writer puts them, fed to a reader in pieces of `piece` bytes. */
async function framed(bodies: Buffer[], piece: number): Promise<FrameReader> {
  const wire = new PassThrough();
  const bytes: Buffer[] = [];
  wire.on('data', (c: Buffer) => bytes.push(c));
  const w = new FrameWriter(wire);
  for (const b of bodies) await w.data(b);
  await w.send({ t: 'end' });
  const all = Buffer.concat(bytes);
  const input = new PassThrough();
  const rd = new FrameReader(input);
  for (let o = 0; o < all.length; o += piece) input.write(all.subarray(o, o + piece));
  input.end();
  return rd;
}

const shares = (a: Buffer, b: Buffer): boolean => a.buffer === b.buffer && a.byteOffset >= b.byteOffset && a.byteOffset < b.byteOffset + b.length;

test('a data frame that arrived in pieces is joined into the scratch buffer when given (else into its own), with the same bytes', async () => {
  const bodies = [randomBytes(70_000), randomBytes(70_000), randomBytes(200_000), randomBytes(10)];
  const scratch = Buffer.alloc(100_000);
  const rd = await framed(bodies, 4096);
  const first = await rd.next(scratch);
  assert.ok(first && first.type === 'data');
  assert.deepEqual(first.data, bodies[0]);
  assert.ok(shares(first.data, scratch), 'joined into the scratch buffer');
  const second = await rd.next();
  assert.ok(second && second.type === 'data');
  assert.deepEqual(second.data, bodies[1]);
  assert.ok(!shares(second.data, scratch), 'without scratch the body is its own');
  const big = await rd.next(scratch);
  assert.ok(big && big.type === 'data');
  assert.deepEqual(big.data, bodies[2]);
  assert.ok(!shares(big.data, scratch), 'a body larger than the scratch buffer gets its own');
  const small = await rd.next(scratch);
  assert.ok(small && small.type === 'data');
  assert.deepEqual(small.data, bodies[3]);
  assert.deepEqual(await rd.expect('end'), { t: 'end' });
  assert.equal(await rd.next(scratch), null);
});
