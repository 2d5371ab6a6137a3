/**
 * Where a migration session decides, after the destination's pre-flight of round 1, whether it
 * goes on: a refusal or a dry run ends it; a caller that asks (`MigrateOptions.confirm`, the app's
 * Migrate dialog) is asked while the process runs on. Such a session starts as a dry run (so a
 * receiver keeps its token if it ends there) and becomes a migration by `proceed`, which only a
 * destination whose hello offered it understands. Shared by one process (source.ts) and a tree
 * (tree-source.ts).
 */
import type { FrameReader, FrameWriter } from './wire';

export interface PreflightAnswer { ok: boolean; items: { id: string; label: string; ok: boolean; reason: string; fix: string | null }[] }

export interface Asking {
  dryRun?: boolean;
  confirm?: (preflight: PreflightAnswer) => Promise<boolean>;
}

/** What the source's hello says: a session that will ask starts as a dry run. */
export function helloDryRun(opts: Asking): boolean {
  return opts.dryRun === true || opts.confirm !== undefined;
}

/**
 * After the pre-flight answer: 'go' (the session is a migration; `proceed` was sent and taken when
 * it was asked) or 'stop' (`abort` sent; the caller reports a dry run or the refusal).
 * proceedUnsupported: it would have asked, but the destination cannot turn a dry run into a migration.
 */
export async function goOnAfterPreflight(rd: FrameReader, wr: FrameWriter, preflight: PreflightAnswer, opts: Asking, hello: { proceed?: unknown }): Promise<{ go: boolean; proceedUnsupported: boolean }> {
  const asking = opts.confirm !== undefined && opts.dryRun !== true;
  const proceedUnsupported = asking && hello.proceed !== true;
  let declined = false;
  if (asking && preflight.ok && !proceedUnsupported) {
    try {
      declined = !(await opts.confirm!(preflight));
    } catch (e) {
      // Cancelled while asked: still a dry run for the receiver, which keeps its token.
      await wr.send({ t: 'abort', reason: 'dry run (cancelled)' }).catch(() => undefined);
      throw e;
    }
  }
  const stop = !preflight.ok || opts.dryRun === true || proceedUnsupported || declined;
  if (stop) {
    await wr.send({ t: 'abort', reason: opts.dryRun || asking ? 'dry run' : 'the pre-flight refused' });
    return { go: false, proceedUnsupported };
  }
  if (asking) {
    await wr.send({ t: 'proceed' });
    await rd.expect('proceeding');
  }
  return { go: true, proceedUnsupported: false };
}
