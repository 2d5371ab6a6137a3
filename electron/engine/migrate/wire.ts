/**
 * The migration session's framing, on any byte pipe (a TLS socket, or the stdin/stdout of
 * `ssh host stasis receive`): the initiator's 8-byte magic, then frames of [u32 LE body length]
 * [u8 type][body]. Type J is one JSON control message; type D is a chunk of a stream file, whose
 * total length the preceding J message announced. Owns only the bytes of the pipe: it neither
 * opens nor closes it. A frame longer than MAX_FRAME or of an unknown type ends the session.
 */
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { StasisError } from '../../../shared/errors';

export const SESSION_MAGIC = Buffer.from('STASMIG1', 'latin1');
/** A replication session (`send --to`, `send --follow`): engine/migrate/sync.ts. */
export const SYNC_MAGIC = Buffer.from('STASYNC1', 'latin1');
const MAX_FRAME = 4 << 20;
export const CHUNK = 1 << 20;
const JSON_FRAME = 0x4a;
const DATA_FRAME = 0x44;

export type Frame = { type: 'json'; msg: Record<string, unknown> & { t: string } } | { type: 'data'; data: Buffer };

function broken(what: string): StasisError {
  return new StasisError('INVALID_INPUT', `The session broke off: ${what}.`);
}

/** Reads frames from a byte stream; null once it ended cleanly between frames. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly src: Readable) {
    src.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      // Bounded memory: a peer that sends faster than we import waits.
      if (this.size > 2 * MAX_FRAME) src.pause();
      this.poke();
    });
    src.on('end', () => { this.ended = true; this.poke(); });
    src.on('close', () => { this.ended = true; this.poke(); });
    src.on('error', (e: Error) => { this.failure = e; this.poke(); });
  }

  /** True once the input ended or failed: an error now is a broken link, not something to answer. */
  get finished(): boolean {
    return this.ended || this.failure !== null;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /**
   * The next n bytes (n <= size): a view of one piece when it holds them all, else one copy of just
   * those bytes, into scratch when it is given and large enough.
   */
  private take(n: number, scratch?: Buffer): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift(); else this.chunks[0] = first.subarray(n);
    } else {
      out = scratch && scratch.length >= n ? scratch.subarray(0, n) : Buffer.allocUnsafe(n);
      let o = 0;
      while (o < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - o);
        c.copy(out, o, 0, k);
        o += k;
        if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
      }
    }
    this.size -= n;
    if (this.size <= MAX_FRAME) this.src.resume();
    return out;
  }

  /** Waits for n bytes; false when the input ends first and `short` allows that (at a frame boundary, or before a magic). */
  private async need(n: number, what: string, short: 'empty' | 'any' | 'never' = 'never'): Promise<boolean> {
    while (this.size < n) {
      if (this.failure) throw broken(`${this.failure.message} (while waiting for ${what})`);
      if (this.ended) {
        if (short === 'any' || (short === 'empty' && this.size === 0)) return false;
        throw broken(`the other side closed the connection in the middle of ${what}`);
      }
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
    return true;
  }

  /** The initiator's magic; false when the first bytes are something else (they stay unread). */
  async magic(expected = SESSION_MAGIC): Promise<boolean> {
    // Input shorter than the magic is not a session: the plain-stream path says what is wrong with it.
    if (!(await this.need(expected.length, 'the session header', 'any'))) return false;
    const head = (this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)).subarray(0, expected.length);
    if (!head.equals(expected)) return false;
    this.take(expected.length);
    return true;
  }

  /** Hands the pipe back as a plain stream, what was read ahead included (not a session after all). */
  detach(): Readable {
    const out = new PassThrough();
    for (const c of this.chunks) out.write(c);
    this.chunks = [];
    this.src.removeAllListeners('data');
    if (this.failure) out.destroy(this.failure);
    else if (this.ended) out.end();
    else {
      this.src.on('error', (e: Error) => out.destroy(e));
      this.src.pipe(out);
      this.src.resume();
    }
    return out;
  }

  /**
   * The next frame. scratch: where a body that arrived in pieces is joined (a data frame of 1 MiB
   * from a pipe comes in 64 KiB pieces), for a caller that is done with the body before its next
   * call; a fresh 1 MiB per frame cost more in page faults than the copy (the stream rounds'
   * receiver: docs/benchmarks.md, "Full round"). Without it the body is the caller's to keep.
   */
  async next(scratch?: Buffer): Promise<Frame | null> {
    if (!(await this.need(5, 'the next message', 'empty'))) return null;
    const head = this.take(5);
    const len = head.readUInt32LE(0);
    if (len > MAX_FRAME) throw broken(`a frame of ${len} bytes is larger than the ${MAX_FRAME} allowed`);
    await this.need(len, 'a message');
    // The pieces the input gave are never reused by it: a view of them is the frame's own.
    const body = len ? this.take(len, head[4] === DATA_FRAME ? scratch : undefined) : Buffer.alloc(0);
    if (head[4] === DATA_FRAME) return { type: 'data', data: body };
    if (head[4] !== JSON_FRAME) throw broken(`unknown frame type ${head[4]}`);
    let msg: unknown;
    try { msg = JSON.parse(body.toString('utf8')); } catch { throw broken('a control message is not JSON'); }
    if (!msg || typeof msg !== 'object' || typeof (msg as { t?: unknown }).t !== 'string') throw broken('a control message has no type');
    return { type: 'json', msg: msg as Record<string, unknown> & { t: string } };
  }

  /** The next frame, which must be control message t (an 'error' message from the peer becomes its error). */
  async expect<T = Record<string, unknown>>(t: string): Promise<T> {
    const f = await this.next();
    if (!f) throw broken(`the other side closed the connection instead of answering "${t}"`);
    if (f.type !== 'json') throw broken(`data arrived where the answer "${t}" was expected`);
    if (f.msg.t === 'error') throw new StasisError(typeof f.msg.code === 'string' ? f.msg.code as never : 'INVALID_INPUT', `The destination says: ${String(f.msg.message)}`);
    if (f.msg.t !== t) throw broken(`"${f.msg.t}" arrived where "${t}" was expected`);
    return f.msg as unknown as T;
  }
}

/** Writes frames, waiting for the pipe to drain so a slow link holds memory bounded. */
export class FrameWriter {
  /** Every byte written so far, frame headers included (what the session cost on the wire). */
  bytes = 0;

  constructor(private readonly dst: Writable) {}

  private async write(type: number, body: Buffer, settled = false): Promise<void> {
    const head = Buffer.alloc(5);
    head.writeUInt32LE(body.length, 0);
    head[4] = type;
    if (this.dst.destroyed || this.dst.writableEnded) throw broken('the connection is closed');
    this.bytes += head.length + body.length;
    const a = this.dst.write(head);
    if (settled) {
      // Written out whole (or failed) before this returns: the caller's buffer is free again. The
      // link's error is listened to meanwhile, as drained() does (unheard, it would end the process).
      await new Promise<void>((resolve, reject) => {
        let over = false;
        const done = (e?: Error | null): void => {
          if (over) return;
          over = true;
          this.dst.off('close', closed);
          // A failed write's 'error' event follows its callback: the listener stays to take it.
          if (e) { reject(broken(e.message)); return; }
          this.dst.off('error', done);
          resolve();
        };
        const closed = (): void => done(new Error('the connection closed'));
        this.dst.once('error', done);
        this.dst.once('close', closed);
        this.dst.write(body, done);
      });
      return;
    }
    const b = this.dst.write(body);
    if (!a || !b) await this.drained();
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (e?: Error): void => {
        this.dst.off('drain', ok);
        this.dst.off('close', closed);
        this.dst.off('error', done);
        if (e) reject(broken(e.message)); else resolve();
      };
      const ok = (): void => done();
      const closed = (): void => done(new Error('the connection closed'));
      this.dst.once('drain', ok);
      this.dst.once('close', closed);
      this.dst.once('error', done);
    });
  }

  async magic(which = SESSION_MAGIC): Promise<void> {
    this.bytes += which.length;
    if (!this.dst.write(which)) await this.drained();
  }

  send(msg: { t: string } & Record<string, unknown>): Promise<void> {
    return this.write(JSON_FRAME, Buffer.from(JSON.stringify(msg), 'utf8'));
  }

  data(chunk: Buffer): Promise<void> {
    return this.dataFrame(chunk, false);
  }

  /**
   * data(), resolving only once chunk was handed to the link whole: the caller may then fill it
   * again. Only for links that copy the bytes out by then (sockets and pipes do; an in-process
   * PassThrough hands the reader the same memory).
   */
  dataReusable(chunk: Buffer): Promise<void> {
    return this.dataFrame(chunk, true);
  }

  /** Every data frame goes through here (a subclass that watches or stops them overrides this). */
  protected dataFrame(chunk: Buffer, settled: boolean): Promise<void> {
    return this.write(DATA_FRAME, chunk, settled);
  }
}
