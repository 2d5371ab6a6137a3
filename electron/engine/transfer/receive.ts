/**
 * The receiving end of a transfer, shared by `stasis receive` and the app's Receive panel: a plain
 * checkpoint stream is spooled and imported; a migration session (its magic first) is served to its
 * end (migrate/destination.ts). `listenForOne` accepts authenticated TLS senders one at a time: the
 * first session uses the one-time token up, unless `again` says the listener stays (a dry run, so
 * the real migration can follow with the same token). The store is reached only through deps.
 */
import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import type * as tls from 'node:tls';
import { StasisError } from '../../../shared/errors';
import { FrameReader, FrameWriter } from '../migrate/wire';
import { serveMigration, type DestinationDeps, type DestinationResult } from '../migrate/destination';
import { spoolAndImport } from './spool';
import { listen, listeningAddress } from './tls-link';

/** What a session brought: checkpoints (a plain stream) or a migration session's outcome. */
export type Received = { ids: number[] } | { migration: DestinationResult };

export type ReceiveDeps = Omit<DestinationDeps, 'spoolDir'> & { storeDir: string };

/** A dry run that got its pre-flight answered (nothing was meant to stay). */
export function answeredDryRun(r: Received): boolean {
  return 'migration' in r && r.migration.dryRun && (r.migration.failure?.includes('dry run') ?? false);
}

/** A migration that ended without a process here (and was not a dry run). */
export function migrationFailed(r: Received): boolean {
  return 'migration' in r && !r.migration.restored && !answeredDryRun(r);
}

/** rd: the input not read yet (a caller that must look at the first bytes itself passes its own reader). */
export async function receiveAny(rd: FrameReader, output: Writable, deps: ReceiveDeps): Promise<Received> {
  if (!(await rd.magic())) return spoolAndImport(deps.storeDir, rd.detach(), deps.importFile);
  const { storeDir, ...rest } = deps;
  // The session spools each round inside the store before the first import could create it.
  fs.mkdirSync(storeDir, { recursive: true, mode: 0o700 });
  return { migration: await serveMigration(rd, new FrameWriter(output), { ...rest, spoolDir: storeDir }) };
}

export interface Listener {
  /** HOST:PORT it listens on (the real port when 0 was asked for). */
  address: string;
  /** The last session's outcome; rejects when a session failed outright. The listener is closed then. */
  done: Promise<Received>;
  /** Stops listening; a session in progress runs to its end. */
  close(): void;
}

export interface ListenOptions {
  /** After this session, wait for another sender with the same token. */
  again?: (r: Received) => boolean;
  /** Every finished session, `again` or not. */
  onSession?: (r: Received) => void;
  /** A connection whose TLS handshake failed (wrong token, not a Stasis sender); the listener goes on. */
  onRefused?: (why: string) => void;
}

export async function listenForOne(addr: { host: string; port: number }, key: Buffer, deps: ReceiveDeps, opts: ListenOptions = {}): Promise<Listener> {
  let busy = false;
  let server: tls.Server | null = null;
  let settle: { resolve(r: Received): void; reject(e: Error): void } | null = null;
  const done = new Promise<Received>((resolve, reject) => { settle = { resolve, reject }; });
  const finish = (r: Received | Error): void => {
    server?.close();
    if (r instanceof Error) settle!.reject(r); else settle!.resolve(r);
  };
  const onSocket = (sock: tls.TLSSocket): void => {
    // One sender at a time, and the token is good for one session (or more only when `again` says so).
    if (busy) { sock.destroy(); return; }
    busy = true;
    if (!opts.again) server?.close();
    receiveAny(new FrameReader(sock), sock, deps).then((res) => {
      if ('ids' in res) sock.end(`${JSON.stringify({ ok: true, ids: res.ids })}\n`);
      else sock.end();
      opts.onSession?.(res);
      busy = false;
      if (!opts.again?.(res)) finish(res);
    }, (e: unknown) => {
      sock.end(`${JSON.stringify({ ok: false, error: (e as Error).message })}\n`);
      finish(e as Error);
    });
  };
  server = await listen(addr, key, onSocket, (why) => opts.onRefused?.(why));
  // An error of a listening server (out of descriptors...) ends it; unhandled, it would end the process.
  server.on('error', (e) => finish(new StasisError('INVALID_INPUT', `The listener stopped: ${e.message}`)));
  // A caller that only closes must not see an unhandled rejection.
  done.catch(() => undefined);
  return { address: listeningAddress(server), done, close: () => { server?.close(); } };
}
