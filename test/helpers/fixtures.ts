/**
 * Compiles the C test fixtures (test/fixtures/<name>.c, which may include test/fixtures/*.h) with
 * `cc` into a cache directory keyed by the content hash of the source and the headers, so every test file and every concurrent test run shares one binary per
 * version of the source. Owns only compiling; never runs the binary (see spawn.ts for that).
 *
 *   const bin = buildFixture('capture-pattern');           // -> /tmp/stasis-fixtures/<hash>/capture-pattern
 *   const bin2 = buildFixture('x', { flags: ['-static'] }); // extra cc flags are part of the cache key
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const fixturesDir = new URL('../fixtures/', import.meta.url).pathname;

export interface BuildOptions {
  /** Extra flags for cc (e.g. ['-static']); defaults already include -O1 -g -pthread. */
  flags?: string[];
}

/** Returns the path of the compiled fixture; throws with cc's output if it does not compile. */
export function buildFixture(name: string, opts: BuildOptions = {}): string {
  const src = join(fixturesDir, `${name}.c`);
  if (!existsSync(src)) throw new Error(`No fixture source ${src}: add test/fixtures/${name}.c.`);
  const flags = ['-O1', '-g', '-pthread', '-Wall', ...(opts.flags ?? [])];
  // The shared headers (test/fixtures/*.h) are part of every fixture's key.
  const hash = createHash('sha256').update(readFileSync(src)).update(flags.join(' '));
  for (const h of readdirSync(fixturesDir).filter((f) => f.endsWith('.h')).sort()) hash.update(readFileSync(join(fixturesDir, h)));
  const key = hash.digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'stasis-fixtures', key);
  const bin = join(dir, name);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  // Compile to a private name, then rename: concurrent test files never see a half-written binary.
  const tmp = `${bin}.${process.pid}.${Date.now()}.tmp`;
  const r = spawnSync('cc', [...flags, '-o', tmp, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`cc failed for ${src} (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  }
  renameSync(tmp, bin);
  return bin;
}
