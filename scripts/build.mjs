#!/usr/bin/env node
// Builds everything the app and the packaged CLI run, into dist/ (flat, so bundles find each other):
//   dist/main.js           Electron main process (ESM)           <- electron/main/app.ts
//   dist/preload.cjs       Electron preload (CJS: sandboxed preloads cannot be ESM) <- electron/main/preload.ts
//   dist/engine-worker.js  the engine worker thread              <- electron/engine/host/worker.ts
//   dist/server.js         browser mode (HTTP + WebSocket)       <- electron/server/main.ts
//   dist/cli.js            the `stasis` CLI                      <- electron/cli/main.ts
//   dist/renderer/         the React UI, built by Vite (relative URLs: loaded from file:// in Electron)
// Pure-JS dependencies are bundled; native modules (better-sqlite3, koffi, ...: detected) stay external so they load
// from node_modules, where electron-builder rebuilds them for Electron's ABI and unpacks them from the
// asar archive (the engine worker is unpacked too: see "build" in package.json).
//   node scripts/build.mjs [--skip-renderer]
import { build as esbuild } from 'esbuild';
import { rmSync, mkdirSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const skipRenderer = process.argv.includes('--skip-renderer');
const started = Date.now();

/** A dependency with a compiled addon (node-gyp, or napi-rs per-platform packages) cannot be bundled. */
function isNative(name) {
  const dir = join(root, 'node_modules', name);
  let meta;
  try { meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')); } catch { return false; }
  if (meta.gypfile || meta.napi || meta.binary || meta.scripts?.install || existsSync(join(dir, 'binding.gyp'))) return true;
  if (Object.keys(meta.optionalDependencies ?? {}).some((d) => d.startsWith(`${name}-`))) return true;
  const hasAddon = (d, depth) => {
    if (depth < 0) return false;
    let entries;
    try { entries = readdirSync(d, { withFileTypes: true }); } catch { return false; }
    return entries.some((e) => (e.isDirectory() ? e.name !== 'node_modules' && hasAddon(join(d, e.name), depth - 1) : e.name.endsWith('.node')));
  };
  return hasAddon(dir, 4);
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const natives = Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }).filter(isNative);

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  external: ['electron', ...natives],
  sourcemap: 'linked',
  logLevel: 'warning',
  legalComments: 'none',
};

await Promise.all([
  esbuild({
    ...common,
    format: 'esm',
    entryPoints: {
      main: 'electron/main/app.ts',
      'engine-worker': 'electron/engine/host/worker.ts',
      server: 'electron/server/main.ts',
      cli: 'electron/cli/main.ts',
    },
    outdir: dist,
    outExtension: { '.js': '.js' },
    // Bundled CommonJS dependencies (commander, ws) call require(); give ESM bundles one.
    banner: { js: "import { createRequire as __stasisCreateRequire } from 'node:module'; const require = __stasisCreateRequire(import.meta.url);" },
  }),
  esbuild({
    ...common,
    format: 'cjs',
    entryPoints: { preload: 'electron/main/preload.ts' },
    outdir: dist,
    outExtension: { '.js': '.cjs' },
  }),
]);

if (!skipRenderer) {
  const { build: vite } = await import('vite');
  const { default: react } = await import('@vitejs/plugin-react');
  await vite({
    configFile: false,
    root: join(root, 'renderer'),
    base: './',
    logLevel: 'warn',
    plugins: [react()],
    build: { outDir: join(dist, 'renderer'), emptyOutDir: true, sourcemap: true, target: 'es2022' },
  });
}

console.log(`build: native modules kept external: ${natives.join(', ')}`);
console.log(`build: dist/ ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
