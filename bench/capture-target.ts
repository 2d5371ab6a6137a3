/**
 * The capture benches' target (bench/capture-target.c: MIB MiB of private anonymous memory, 30%
 * zero pages, the rest random), built once per work directory and started in a session of its own
 * (setsid: CRIU can dump it without --shell-job). `side` is its directory: it writes its pid to
 * `ready` once its memory is filled.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnDetached, type DetachedProcess } from '../test/helpers/spawn';

const here = fileURLToPath(new URL('.', import.meta.url));

export function buildCaptureTarget(work: string): string {
  const bin = join(work, 'capture-target');
  if (existsSync(bin)) return bin;
  const cc = spawnSync('cc', ['-O2', '-o', bin, join(here, 'capture-target.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(cc.stderr);
  return bin;
}

export function startCaptureTarget(bin: string, side: string, mib: number): { target: DetachedProcess; ready(): Promise<number> } {
  mkdirSync(side, { recursive: true });
  const target = spawnDetached(['setsid', bin, side, String(mib)]);
  return {
    target,
    ready: async () => {
      while (!existsSync(join(side, 'ready'))) await new Promise((r) => setTimeout(r, 20));
      return Number(readFileSync(join(side, 'ready'), 'utf8').trim());
    },
  };
}
