/** Shared bits of the capture tests: temp dirs, a real store, and waiting for a fixture's side files. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../electron/engine/store';
import type { Store } from '../../electron/engine/store/api';

export function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), `stasis-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function tempStore(): { store: Store; dir: string; cleanup(): void } {
  const t = tempDir('capture-store');
  const store = openStore(join(t.dir, 'store'));
  return { store, dir: join(t.dir, 'store'), cleanup: () => { store.close(); t.cleanup(); } };
}

export async function waitFor<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function waitForFile(path: string, timeoutMs = 10_000): Promise<string> {
  return waitFor(path, () => (existsSync(path) ? readFileSync(path, 'utf8') : null), timeoutMs);
}

export function procStatus(pid: number): { state: string; tracerPid: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { state: /State:\s+(\S)/.exec(s)![1]!, tracerPid: Number(/TracerPid:\s+(\d+)/.exec(s)![1]) };
  } catch {
    return null;
  }
}

/** Key/value lines of the pattern fixture's info.txt. */
export function readInfo(dir: string): { region: bigint; pages: number; heap: bigint; gen: number; ticks: number } {
  const txt = readFileSync(join(dir, 'info.txt'), 'utf8');
  const get = (k: string): string[] => new RegExp(`^${k} (.*)$`, 'm').exec(txt)![1]!.split(' ');
  return {
    region: BigInt(`0x${get('region')[0]}`),
    pages: Number(get('region')[1]),
    heap: BigInt(`0x${get('heap')[0]}`),
    gen: Number(get('gen')[0]),
    ticks: Number(get('ticks')[0]),
  };
}
