/**
 * The sending end of a plain transfer over the TLS link: a stream file (already exported) is copied
 * to a `receive` listener, which imports it only once it arrived whole and answers with one JSON
 * line. Cancelling closes the connection mid-stream, so the receiver imports nothing.
 */
import * as fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StasisError } from '../../../shared/errors';
import type { SyncLink } from '../migrate/sync';
import { connect } from './tls-link';

export interface SendOptions {
  signal?: AbortSignal;
  /** Bytes of the file sent so far (called per chunk; the caller throttles). */
  onBytes?: (done: number, total: number) => void;
}

/** Reads the receiver's one-line JSON answer after the stream was sent. */
async function readAck(s: Readable): Promise<{ ok: boolean; ids?: number[]; error?: string }> {
  let text = '';
  for await (const chunk of s) { text += (chunk as Buffer).toString('utf8'); if (text.length > 1 << 16) break; }
  try {
    return JSON.parse(text.split('\n')[0]) as { ok: boolean; ids?: number[]; error?: string };
  } catch (_e) {
    throw new StasisError('INVALID_INPUT', 'The receiver closed the connection without confirming the import; check `stasis list` there before sending again.');
  }
}

/** Sends file to the listener at addr; returns the ids the receiver imported it as. */
export async function sendStreamFile(addr: { host: string; port: number }, key: Buffer, file: string, opts: SendOptions = {}): Promise<number[]> {
  if (opts.signal?.aborted) throw new StasisError('CANCELLED', 'The send was cancelled before it started; nothing was sent.');
  const sock = await connect(addr, key);
  const cancelled = (): void => { sock.destroy(); };
  opts.signal?.addEventListener('abort', cancelled, { once: true });
  try {
    const total = fs.statSync(file).size;
    const src = fs.createReadStream(file);
    let done = 0;
    if (opts.onBytes) src.on('data', (c) => { done += c.length; opts.onBytes!(done, total); });
    try {
      await pipeline(src, sock as Writable, { end: false });
      sock.end();
      const ack = await readAck(sock);
      if (!ack.ok) throw new StasisError('INVALID_INPUT', `The receiver imported nothing: ${ack.error ?? 'no reason given'}`);
      return ack.ids ?? [];
    } catch (e) {
      if (opts.signal?.aborted) {
        throw new StasisError('CANCELLED', done < total ? `The send was cancelled after ${done} of ${total} bytes; the receiver imports nothing from a partial stream.`
          : 'The send was cancelled after the whole stream went out, before the receiver confirmed: it may have imported it; look at its checkpoints before sending again.');
      }
      throw e;
    }
  } finally {
    opts.signal?.removeEventListener('abort', cancelled);
    sock.destroy();
  }
}

/**
 * Opens a replication link (migrate/sync.ts) to a listener. idleMs: a link on which nothing moves
 * that long is cut, so a receiver that stalls without closing (a frozen host, a dropped route)
 * ends in a break the sender retries or reports, instead of a wait without end.
 */
export function syncLinkTo(addr: { host: string; port: number }, key: Buffer, idleMs?: number): () => Promise<SyncLink> {
  return async () => {
    const sock = await connect(addr, key);
    if (idleMs) sock.setTimeout(idleMs, () => sock.destroy(new Error(`nothing moved on the connection for ${Math.round(idleMs / 1000)} s`)));
    return {
      input: sock, output: sock,
      close: () => new Promise<void>((resolve) => {
        const t = setTimeout(() => { sock.destroy(); resolve(); }, 5000);
        sock.once('close', () => { clearTimeout(t); resolve(); });
        sock.end();
      }),
    };
  };
}
