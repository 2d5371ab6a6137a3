/**
 * Runs a zdtm-style fixture (test/fixtures/zdtm.h) through a checkpoint that kills it and a
 * restore: start it, wait for "ready", checkpoint, restore, create OUT.go, and hand back the lines
 * it wrote after "ready" (each "fail ..." names what came back wrong; the last is "done pass" or
 * "done fail").
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, checkpointTree, closeTrackers } from '../../electron/engine/capture';
import { restore } from '../../electron/engine/restore';
import type { Store } from '../../electron/engine/store';
import { fileLines, killQuietly, waitFor } from './helpers';

export interface ZdtmRun { lines: string[]; checkpointId: number; pid: number; freeze: string }

export interface ZdtmOptions {
  /** Extra arguments after OUT and DIR. */
  args?: string[];
  /** Take the process and its children as one tree checkpoint. */
  tree?: boolean;
  /** Checkpoint options (default: kill it; one that leaves it running is followed by a SIGKILL). */
  checkpoint?: Parameters<typeof checkpoint>[2];
  /** Runs between the checkpoint and the restore (e.g. to let time pass). */
  beforeRestore?: () => Promise<void>;
}

/** Starts `bin OUT DIR ...` and waits until it says ready; returns its pid. */
export async function startZdtm(bin: string, dir: string, args: string[] = []): Promise<{ out: string; pid: number; kill: () => void; waitExit: () => Promise<unknown> }> {
  const out = join(dir, 'zdtm.out');
  const t = spawnDetached([bin, out, dir, ...args], { cwd: dir, log: join(dir, 'zdtm.log') });
  await waitFor(`${bin} to be ready`, () => fileLines(out).some((l) => l.startsWith('ready')), 10_000);
  return { out, pid: t.pid, kill: () => t.kill(), waitExit: () => t.waitExit() };
}

/** The fixture's verdict lines once OUT.go exists. */
export async function verdict(out: string): Promise<string[]> {
  writeFileSync(`${out}.go`, '');
  await waitFor(`${out}: the fixture's verdict`, () => fileLines(out).some((l) => l.startsWith('done')), 15_000);
  return fileLines(out).filter((l) => !l.startsWith('ready'));
}

export async function runZdtm(store: Store, dir: string, bin: string, opts: ZdtmOptions = {}): Promise<ZdtmRun> {
  const t = await startZdtm(bin, dir, opts.args);
  let pid: number | undefined;
  try {
    const copts = opts.checkpoint ?? { mode: 'kill' as const };
    const c = opts.tree ? { ...checkpointTree(store, t.pid, copts), freeze: 'tree' } : checkpoint(store, t.pid, copts);
    if (opts.checkpoint && opts.checkpoint.mode !== 'kill') t.kill();
    await t.waitExit();
    // A tree's children must be gone (reaped by init) before their PIDs can be given back.
    const pids = 'members' in c ? c.members.map((m) => m.pid) : [];
    await waitFor('the checkpointed processes to be reaped', () => pids.every((p) => !existsSync(`/proc/${p}`)), 10_000);
    await opts.beforeRestore?.();
    const r = restore(store, c.id, { log: join(dir, 'restore.log') });
    pid = r.pid;
    if (existsSync(`${t.out}.go`)) throw new Error('OUT.go existed before the restore');
    return { lines: await verdict(t.out), checkpointId: c.id, pid: r.pid, freeze: c.freeze };
  } finally {
    t.kill();
    killQuietly(pid);
    closeTrackers();
  }
}
