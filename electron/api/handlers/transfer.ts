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
import { migrate, type MigrateOptions, type MigrateResult, type PreflightAnswer } from '../../engine/migrate/source';
import type { HandlerContext } from '../context';
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

/** migrate.run calls (by call id) that wait after their pre-flight for migrate.confirm. */
const waiting = new Map<string, (go: boolean) => void>();
/** An unanswered question ends the session as a dry run after this long (the process runs on meanwhile). */
const CONFIRM_WAIT_MS = 30 * 60_000;

/** The question a confirming migrate.run asks: its pre-flight as an event of the call, then the answer from migrate.confirm. */
function askCaller(ctx: HandlerContext, callId: string): (pf: PreflightAnswer) => Promise<boolean> {
  return (pf) => new Promise<boolean>((resolve, reject) => {
    const done = (go: boolean | Error): void => {
      clearTimeout(timer);
      waiting.delete(callId);
      ctx.signal?.removeEventListener('abort', cancelled);
      if (go instanceof Error) reject(go); else resolve(go);
    };
    const cancelled = (): void => done(new StasisError('CANCELLED', 'Cancelled after the pre-flight; nothing was stopped.'));
    const timer = setTimeout(() => done(false), CONFIRM_WAIT_MS);
    if (ctx.signal?.aborted) { cancelled(); return; }
    ctx.signal?.addEventListener('abort', cancelled);
    waiting.set(callId, (go) => done(go));
    ctx.emit('migrate.preflight', { callId, preflight: pf });
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
  'migrate.run': async ({ pid, to, token, dryRun, confirm, maxRounds, samePid }, ctx) => {
    const addr = parseAddress(to, false);
    const key = tokenKey(token);
    let ask: ((pf: PreflightAnswer) => Promise<boolean>) | undefined;
    if (confirm && !dryRun) {
      if (!ctx.callId) throw new StasisError('INVALID_INPUT', 'confirm needs the call\'s id: migrate.confirm names the waiting call by it.');
      ask = askCaller(ctx, ctx.callId);
    }
    const opts: MigrateOptions = { dryRun, ...(ask ? { confirm: ask } : {}), ...(maxRounds !== undefined ? { maxRounds } : {}), ...(samePid === false ? { samePid } : {}) };
    const first = await migrateOnce(pid, addr, key, opts, ctx);
    // A destination that cannot go on from a dry run: asked all the same, then a new session (round 1 sent again).
    if (first.proceedUnsupported && ask && await ask(first.preflight)) return migrateOnce(pid, addr, key, { ...opts, dryRun: false, confirm: undefined }, ctx);
    return first;
  },
  'migrate.confirm': ({ callId, go }) => {
    const answer = waiting.get(callId);
    if (!answer) throw new StasisError('NOT_FOUND', `No migration waits for an answer under call ${callId}: it ended (cancelled, failed, or waited ${CONFIRM_WAIT_MS / 60_000} minutes).`);
    answer(go);
    return { go };
  },
};

async function migrateOnce(pid: number, addr: ReturnType<typeof parseAddress>, key: Buffer, opts: MigrateOptions, ctx: HandlerContext): Promise<MigrateResult> {
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
    const r = await migrate(ctx.store(), pid, new FrameReader(sock), wr, opts);
    progress(emit).finish({ total: 1, unit: 'steps', phase: r.dryRun ? 'dry run answered' : 'migrated' });
    return r;
  } finally {
    await closeGently(sock);
  }
}
