/**
 * The receiving end of a transfer, one for `stasis receive` and the app's Receive panel: a plain
 * checkpoint stream is spooled and imported; a replication session (`send --to`, `send --follow`,
 * a schedule's "also send to": its STASYNC1 magic first) is served by migrate/sync.ts; a migration
 * session (STASMIG1) by migrate/destination.ts. `startListener` accepts authenticated TLS senders
 * one at a time on one pairing token: the first session uses it up, except a replication session
 * that broke off (its sender comes back to resume), a session `again` lets through (a dry run, so
 * the real migration can follow), or every session when `keep` (until close()). The store is
 * reached only through deps.
 */
import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import type * as tls from 'node:tls';
import { StasisError } from '../../../shared/errors';
import { FrameReader, FrameWriter, SYNC_MAGIC } from '../migrate/wire';
import { serveMigration, type DestinationDeps, type DestinationResult } from '../migrate/destination';
import { serveSync, type SyncServed } from '../migrate/sync';
import type { AcceptResult } from '../migrate/negotiate';
import type { Store } from '../store/api';
import { spoolAndImport } from './spool';
import { listen, listeningAddress } from './tls-link';

/** What a session brought: checkpoints (a plain stream), a replication session's outcome, or a migration session's. */
export type Received = { ids: number[] } | { replication: SyncServed } | { migration: DestinationResult };

export type ReceiveDeps = Omit<DestinationDeps, 'spoolDir' | 'store'> & {
  storeDir: string;
  /** Where pages negotiated by hash are looked up (a read beside the import call). */
  store: Store;
  /** Each checkpoint a replication session imported, as it lands (a --follow session stays open as long as its process runs). */
  onImported?: (r: AcceptResult) => void;
};

/** A replication session that broke off: its sender may come back with the same token to resume. */
export function replicationBroke(r: Received): boolean {
  return 'replication' in r && !r.replication.complete && !r.replication.refused;
}

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
  if (await rd.magic(SYNC_MAGIC)) {
    const r = await serveSync(rd, new FrameWriter(output), { store: deps.store, importFile: deps.importFile, ...(deps.beginImport ? { beginImport: deps.beginImport } : {}), ...(deps.onImported ? { onImported: deps.onImported } : {}) });
    return { replication: r };
  }
  if (!(await rd.magic())) return spoolAndImport(deps.storeDir, rd.detach(), deps.importFile);
  const { storeDir, onImported: _i, ...rest } = deps;
  // The session spools each round inside the store before the first import could create it.
  fs.mkdirSync(storeDir, { recursive: true, mode: 0o700 });
  return { migration: await serveMigration(rd, new FrameWriter(output), { ...rest, spoolDir: storeDir }) };
}

export interface Listener {
  /** HOST:PORT it listens on (the real port when 0 was asked for). */
  address: string;
  /**
   * The session that ended the listener, or null when close() did. Rejects when a session failed
   * outright (a plain stream or migration that could not be imported, a refused replication) and
   * `keep` was not asked; the listener is closed then.
   */
  done: Promise<Received | null>;
  /** Stops listening; a session in progress runs to its end. */
  close(): void;
}

export interface ListenOptions {
  /** Every session leaves the listener open for the next one with the same token, until close(). */
  keep?: boolean;
  /** After this session, wait for another sender with the same token. */
  again?: (r: Received) => boolean;
  /** Every finished session, the one that ends the listener included. */
  onSession?: (r: Received) => void;
  /** With keep: a session that failed (the listener goes on). */
  onFailed?: (e: Error) => void;
  /** A connection whose TLS handshake failed (wrong token, not a Stasis sender); the listener goes on. */
  onRefused?: (why: string) => void;
}

export async function startListener(addr: { host: string; port: number }, key: Buffer, deps: ReceiveDeps, opts: ListenOptions = {}): Promise<Listener> {
  let busy = false;
  let server: tls.Server | null = null;
  let settle: { resolve(r: Received | null): void; reject(e: Error): void } | null = null;
  const done = new Promise<Received | null>((resolve, reject) => { settle = { resolve, reject }; });
  const finish = (r: Received | Error | null): void => {
    server?.close();
    if (r instanceof Error) settle!.reject(r); else settle!.resolve(r);
  };
  const onSocket = (sock: tls.TLSSocket): void => {
    // One sender at a time: a second one is cut until the first is done.
    if (busy) { sock.destroy(); return; }
    busy = true;
    receiveAny(new FrameReader(sock), sock, deps).then((res) => {
      if ('ids' in res) sock.end(`${JSON.stringify({ ok: true, ids: res.ids })}\n`);
      else sock.end();
      busy = false;
      opts.onSession?.(res);
      if ('replication' in res && res.replication.refused && !opts.keep) {
        finish(new StasisError('INVALID_INPUT', `The transfer was refused: ${res.replication.failure ?? 'no reason given'}`));
        return;
      }
      if (!opts.keep && !replicationBroke(res) && !opts.again?.(res)) finish(res);
    }, (e: unknown) => {
      sock.end(`${JSON.stringify({ ok: false, error: (e as Error).message })}\n`);
      busy = false;
      if (opts.keep) opts.onFailed?.(e as Error);
      else finish(e as Error);
    });
  };
  server = await listen(addr, key, onSocket, (why) => opts.onRefused?.(why));
  // An error of a listening server (out of descriptors...) ends it; unhandled, it would end the process.
  server.on('error', (e) => finish(new StasisError('INVALID_INPUT', `The listener stopped: ${e.message}`)));
  // A caller that only closes must not see an unhandled rejection.
  done.catch(() => undefined);
  return { address: listeningAddress(server), done, close: () => { finish(null); } };
}
