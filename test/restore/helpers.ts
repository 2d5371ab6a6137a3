/**
 * Shared pieces of the restore tests: a throw-away store, polling, reading a self-checking target's
 * output, and the processes the test process has as children (to prove nothing is left behind).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../electron/engine/store';

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
