/**
 * Shared pieces of the restore tests: a throw-away store, polling, reading a self-checking target's
 * output, and the processes the test process has as children (to prove nothing is left behind).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../electron/engine/store';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';

export function tempDir(prefix = 'stasis-restore-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function withStore<T>(fn: (store: Store, dir: string) => Promise<T>): Promise<T> {
  const dir = tempDir('stasis-restore-store-');
  const store = openStore(join(dir, 'store'));
  return fn(store, dir).finally(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function fileLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Parses "k=v k=v" lines of the fidelity fixture. */
export function fields(line: string): Record<string, number> {
  return Object.fromEntries(line.split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k!, Number(v)]));
}

/** Live (not zombie) processes whose parent is this test process. */
export function liveChildren(): number[] {
  const out: number[] = [];
  for (const t of readdirSync(`/proc/${process.pid}/task`)) {
    const kids = readFileSync(`/proc/${process.pid}/task/${t}/children`, 'utf8').trim();
    for (const k of kids ? kids.split(' ').map(Number) : []) {
      try {
        const st = readFileSync(`/proc/${k}/stat`, 'utf8');
        const state = st.slice(st.lastIndexOf(')') + 2)[0];
        if (state !== 'Z' && state !== 'X') out.push(k);
      } catch {
        // gone
      }
    }
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = st.slice(st.lastIndexOf(')') + 2)[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function killQuietly(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Runs argv under a parent that reaps late, as a busy shell or init may: it is the subreaper of
 * everything argv forks, and reaps nothing until reap() was called and 0.4 s more have passed, so
 * a killed target stays a zombie holding its PID meanwhile. `pid` is argv's process.
 */
export async function spawnUnderLateReaper(argv: string[], dir: string): Promise<{ pid: number; reaper: DetachedProcess; reap(): void }> {
  const go = join(dir, 'reap-now');
  const pidFile = join(dir, 'reaped-child.pid');
  const code = [
    'import ctypes, os, sys, time',
    'ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)',  // PR_SET_CHILD_SUBREAPER
    'pid = os.fork()',
    'if pid == 0: os.execvp(sys.argv[3], sys.argv[3:])',
    'open(sys.argv[1] + ".tmp", "w").write(str(pid)); os.rename(sys.argv[1] + ".tmp", sys.argv[1])',
    'while not os.path.exists(sys.argv[2]): time.sleep(0.01)',
    'time.sleep(0.4)',
    'while True:',
    '    try: os.waitpid(-1, 0)',
    '    except ChildProcessError: break',
  ].join('\n');
  const reaper = spawnDetached(['python3', '-c', code, pidFile, go, ...argv], { cwd: dir });
  await waitFor('the late reaper to start its child', () => fileLines(pidFile).length > 0);
  return { pid: Number(fileLines(pidFile)[0]), reaper, reap: () => writeFileSync(go, '') };
}

/** True while pid is a zombie (ended, not reaped yet). */
export function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
