/**
 * Handlers for shared/contract/transfer.ts: the receive listener (electron/api/receiver.ts), sending
 * a checkpoint over the TLS link (export to a private spool, then engine/transfer/send.ts) and
 * migrating a process (engine/migrate/source.ts through a GuardedWriter, so Cancel stops it where
 * the source can still resume untouched). Tokens are inputs only; they are never logged or echoed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { HandlerMap } from '../handler-types';
import type { transferCalls } from '../../../shared/contract/transfer';
import { StasisError } from '../../../shared/errors';
import { connect, parseAddress, tokenKey } from '../../engine/transfer/tls-link';
import { spoolDir } from '../../engine/transfer/spool';
import { sendStreamFile } from '../../engine/transfer/send';
import { FrameReader } from '../../engine/migrate/wire';
import { GuardedWriter } from '../../engine/migrate/guarded-writer';
import { migrate } from '../../engine/migrate/source';
import { progress } from '../../engine/progress';
import { progressEvents } from '../progress';
import { receiverStatus, startReceiver, stopReceiver } from '../receiver';

/** Closes the link with end(), not destroy(): the last frames must still reach the receiver. */
function closeGently(sock: TLSSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    if (sock.destroyed) { resolve(); return; }
    const t = setTimeout(() => { sock.destroy(); resolve(); }, 10_000);
    sock.once('close', () => { clearTimeout(t); resolve(); });
    sock.end();
  });
}

export const transferHandlers: HandlerMap<typeof transferCalls> = {
  'transfer.listen': ({ address, keep }, ctx) => startReceiver(address, keep, ctx),
  'transfer.receiver': () => receiverStatus(),
  'transfer.stop': (_i, ctx) => stopReceiver(ctx),
  'transfer.send': async ({ id, to, token, how }, ctx) => {
    const addr = parseAddress(to, false);
    const key = tokenKey(token);
    const dir = spoolDir(ctx.storeDir, 'send');
    try {
      const file = path.join(dir, 'stream');
      const r = ctx.store().exportStream(id, file, how ?? 'one', { signal: ctx.signal });
      if (ctx.signal?.aborted) throw new StasisError('CANCELLED', 'The send was cancelled before anything was sent.');
      const p = progress(progressEvents(ctx, 'send'));
      const received = await sendStreamFile(addr, key, file, {
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        onBytes: (done, total) => p.report({ done, total, unit: 'bytes' }),
      });
      p.finish({ total: r.bytes, unit: 'bytes' });
      return { checkpoints: r.checkpoints, pages: r.pages, bytes: r.bytes, received };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  'migrate.run': async ({ pid, to, token, dryRun, maxRounds, samePid }, ctx) => {
    const addr = parseAddress(to, false);
    const key = tokenKey(token);
    const sock = await connect(addr, key);
    const emit = progressEvents(ctx, 'migrate');
    // One throttle per round, so every round's first report gets through however short the round.
    let round = { n: 0, p: progress(emit) };
    const wr = new GuardedWriter(sock, ctx.signal, (b) => {
      if (b.round !== round.n) round = { n: b.round, p: progress(emit) };
      round.p.report({
        done: 0, total: 1, unit: 'steps', phase: `round ${b.round}${b.round === 1 ? ' (full)' : b.final ? ' (final, process frozen)' : ''}`,
        within: { done: b.done, total: b.total, unit: 'bytes' },
      });
    });
    try {
      const r = await migrate(ctx.store(), pid, new FrameReader(sock), wr, { dryRun, ...(maxRounds !== undefined ? { maxRounds } : {}), ...(samePid === false ? { samePid } : {}) });
      progress(emit).finish({ total: 1, unit: 'steps', phase: r.dryRun ? 'dry run answered' : 'migrated' });
      return r;
    } finally {
      await closeGently(sock);
    }
  },
};
