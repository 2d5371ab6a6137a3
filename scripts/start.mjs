#!/usr/bin/env node
// `npm start`: builds dist/ if it is missing or older than the sources, then launches the Electron
// app when its binary is installed and a display exists; otherwise says in one line why not and
// starts browser mode (prints the URL, opens it with xdg-open when a display exists).
//   node scripts/start.mjs [--browser] [--port N] [--store DIR] [--no-open]
// --browser (`npm run ui`) always starts browser mode. The Electron binary is detected through
// node_modules/electron/path.txt, never by require('electron'), which would try to download it.
import { existsSync, readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { upToDate } from './lib/freshness.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const forceBrowser = args.includes('--browser');
const rest = args.filter((a) => a !== '--browser');

const outputs = ['main.js', 'preload.cjs', 'engine-worker.js', 'server.js', 'cli.js', 'renderer/index.html'].map((f) => join(root, 'dist', f));
const sources = ['electron', 'shared', 'renderer'].map((d) => join(root, d));
if (!upToDate(outputs, sources, (n) => /\.(ts|tsx|css|html)$/.test(n))) {
  console.log('start: building dist/ (sources changed or not built yet)…');
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) { console.error('start: the build failed; see the errors above.'); process.exit(r.status ?? 1); }
}

/** null when Electron can run; else the reason it cannot, as the end of a sentence. */
function electronUnavailable() {
  const pathTxt = join(root, 'node_modules', 'electron', 'path.txt');
  if (!existsSync(pathTxt)) return 'the Electron binary is not installed (its download failed or was skipped during npm install)';
  const binary = join(root, 'node_modules', 'electron', 'dist', readFileSync(pathTxt, 'utf8').trim());
  if (!existsSync(binary)) return `the Electron binary is missing (${binary})`;
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return 'there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)';
  return null;
}

const why = forceBrowser ? null : electronUnavailable();
if (!forceBrowser && why === null) {
  const binary = join(root, 'node_modules', 'electron', 'dist', readFileSync(join(root, 'node_modules', 'electron', 'path.txt'), 'utf8').trim());
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE;
  const child = spawn(binary, [root, ...rest], { stdio: 'inherit', env });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  if (why) console.log(`Stasis: starting browser mode because ${why}.`);
  const { main } = await import(pathToFileURL(join(root, 'dist', 'server.js')).href);
  await main(rest);
}
