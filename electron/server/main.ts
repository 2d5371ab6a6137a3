/**
 * Browser mode entry (`npm run ui`, or `npm start` without the Electron binary): starts the engine
 * worker and the local server, prints the URL (with its token), opens it when a display exists.
 *   node dist/server.js [--port N] [--store DIR] [--no-open]
 * Stops cleanly on SIGINT/SIGTERM. Prints "STASIS_URL <url>" as a machine-readable line for tests.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { EngineHost } from '../engine/host/engine-host';
import { resolveStoreDir } from '../engine/host/store-access';
import { startServer } from './server';

/** dist/renderer: next to the bundle (dist/server.js), or under the checkout when run from sources. */
function rendererDir(): string {
  const self = import.meta.url;
  return fileURLToPath(self.endsWith('.ts') ? new URL('../../dist/renderer/', self) : new URL('./renderer/', self));
}

function openInBrowser(url: string): void {
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return;
  const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
  child.on('error', () => console.error('stasis: could not run xdg-open; open the URL above yourself.'));
  child.unref();
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string' }, store: { type: 'string' }, 'no-open': { type: 'boolean' } },
  });
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, not "${values.port}".`);
  const storeDir = resolveStoreDir(values.store);
  const dir = rendererDir();
  if (!existsSync(dir)) console.error(`stasis: the user interface is not built (${dir} is missing); run "npm run build".`);
  const engine = new EngineHost(storeDir);
  engine.keepAlive(); // scheduled checkpoints run in the worker, whether or not a browser is open
  const server = await startServer({ engine, rendererDir: dir, port, storeDir });
  console.log(`Stasis is running in browser mode (store: ${storeDir}).`);
  console.log(`Open ${server.url}`);
  console.log(`STASIS_URL ${server.url}`);
  if (!values['no-open']) openInBrowser(server.url);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void server.close().then(() => engine.close()).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(entry).href) {
  main().catch((err: unknown) => {
    console.error(`stasis: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
