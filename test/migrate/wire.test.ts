import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import * as net from 'node:net';
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

test('dataReusable resolves only once the frame left the buffer: one buffer refilled for every frame arrives intact through a socket whose reader lags', async () => {
  const frames = 2000;
  const size = 8192; // below the writable's high-water mark, where data() would not wait at all
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const peer = await accepted;
  peer.pause();
  try {
    const w = new FrameWriter(client);
    const buf = Buffer.alloc(size);
    const sending = (async () => {
      for (let i = 0; i < frames; i++) {
        buf.fill(i & 0xff);
        buf.writeUInt32LE(i, 0);
        await w.dataReusable(buf);
      }
    })();
    // The reader starts late: the socket's buffers fill and writes wait in the writer.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const rd = new FrameReader(peer);
    peer.resume();
    for (let i = 0; i < frames; i++) {
      const f = await rd.next();
      assert.ok(f && f.type === 'data');
      assert.equal(f.data.readUInt32LE(0), i, `frame ${i} is frame ${f.data.readUInt32LE(0)}`);
      assert.ok(f.data.subarray(4).every((b) => b === (i & 0xff)), `frame ${i} was overwritten`);
    }
    await sending;
  } finally {
    client.destroy();
    peer.destroy();
    server.close();
  }
});
