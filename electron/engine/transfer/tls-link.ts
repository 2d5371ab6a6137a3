/**
 * The direct link between two Stasis instances: TLS 1.2 with ECDHE-PSK-CHACHA20-POLY1305, the PSK
 * being a one-time pairing token the receiver prints. Both ends prove they hold the token (mutual
 * authentication without certificates), ECDHE gives forward secrecy, and a recorded session cannot
 * be replayed to a new one. This module owns the token format and the TLS options; it never
 * accepts a plaintext or non-PSK connection and never logs the token: it shows only on the receiver's
 * own terminal (`stasis receive --listen`) or the app panel that started the listener.
 */
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { StasisError } from '../../../shared/errors';

const PREFIX = 'stasis1-';
const IDENTITY = 'stasis-pair';
const KEY_BYTES = 32;
const OPTS = { ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;
/**
 * TCP keepalive after this long idle, on both ends: a `send --follow` session or a kept listener
 * waits between checkpoints, and a peer gone without a word (a machine off, a cable out) would
 * otherwise be noticed only by the next write.
 */
export const KEEPALIVE_MS = 15_000;

export function newToken(): { token: string; key: Buffer } {
  const key = randomBytes(KEY_BYTES);
  return { token: PREFIX + key.toString('base64url'), key };
}

export function tokenKey(token: string): Buffer {
  const key = token.startsWith(PREFIX) ? Buffer.from(token.slice(PREFIX.length), 'base64url') : Buffer.alloc(0);
  if (key.length !== KEY_BYTES || PREFIX + key.toString('base64url') !== token) {
    throw new StasisError('INVALID_INPUT', `"${token.slice(0, 12)}..." is not a pairing token; copy the whole token \`stasis receive --listen\` printed (it starts with ${PREFIX}).`);
  }
  return key;
}

/** HOST:PORT, with [v6]:PORT accepted; port 0 only when listening (the system picks one). */
export function parseAddress(v: string, listening: boolean): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535 || (port === 0 && !listening)) throw new StasisError('INVALID_INPUT', `"${v}" is not HOST:PORT (for example 10.0.0.5:7411 or [::1]:7411).`);
  return { host: m[1] ?? m[2], port };
}

export function listen(addr: { host: string; port: number }, key: Buffer, onSocket: (s: tls.TLSSocket) => void, onRefused: (why: string) => void): Promise<tls.Server> {
  const server = tls.createServer({
    ...OPTS,
    // The receiver answers with an ack after the sender has finished writing.
    allowHalfOpen: true,
    pskCallback: (_s, identity) => (identity === IDENTITY ? key : null),
  }, (s) => { s.setKeepAlive(true, KEEPALIVE_MS); onSocket(s); });
  // A wrong token fails the handshake (the MACs of the Finished messages differ); that is not fatal to the listener.
  server.on('tlsClientError', (e) => onRefused(e.message));
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new StasisError('INVALID_INPUT', `Cannot listen on ${addr.host}:${addr.port} (${e.message}); choose another address or port.`)));
    server.listen(addr.port, addr.host, () => resolve(server));
  });
}

export function connect(addr: { host: string; port: number }, key: Buffer): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      ...OPTS, host: addr.host, port: addr.port,
      // The PSK authenticates the receiver; there is no certificate whose name could be checked.
      checkServerIdentity: () => undefined,
      pskCallback: () => ({ psk: key, identity: IDENTITY }),
    }, () => { s.removeAllListeners('error'); s.setKeepAlive(true, KEEPALIVE_MS); resolve(s); });
    s.once('error', (e: NodeJS.ErrnoException) => {
      const why = /alert|decrypt|bad record mac|handshake/i.test(e.message)
        ? 'the receiver refused the pairing token (wrong or already used token?); start `stasis receive --listen` again and use the token it prints'
        : e.message;
      reject(new StasisError('INVALID_INPUT', `Cannot send to ${addr.host}:${addr.port}: ${why}. Nothing was sent.`));
    });
  });
}

/** Where a listening server is, as HOST:PORT (IPv6 in brackets); the port is the real one when 0 was asked for. */
export function listeningAddress(server: tls.Server): string {
  const a = server.address();
  if (!a || typeof a !== 'object') throw new StasisError('INTERNAL', 'The listener has no address.');
  return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}
