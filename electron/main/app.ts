/**
 * Electron main process: single instance, one hardened window, a tray icon (Open, Quit), closing the
 * window keeps the app in the tray (background schedules need it), and the engine in a worker thread
 * reached over IPC. Loaded as dist/main.js (esbuild bundle), next to preload.cjs, engine-worker.js
 * and renderer/.
 *
 * better-sqlite3 is a native module and must match the ABI of the runtime that loads it: tests and
 * the CLI use the Node build from `npm install`; the packaged app gets an Electron build because
 * electron-builder rebuilds native dependencies for Electron (install-app-deps) when packaging.
 */
import { app, BrowserWindow, Menu, Tray, nativeImage } from 'electron';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { EngineHost } from '../engine/host/engine-host';
import { resolveStoreDir } from '../engine/host/store-access';
import { harden } from './hardening';
import { wireIpc } from './ipc';
import { notifyScheduleEvent } from './schedule-notifications';

const here = fileURLToPath(new URL('.', import.meta.url));
const pagePath = join(here, 'renderer', 'index.html');
const pageUrl = pathToFileURL(pagePath).href;
const iconPath = join(here, '..', 'build', 'icon.png');

let win: BrowserWindow | null = null;
let tray: Tray | null = null;
let quitting = false;

function createWindow(): BrowserWindow {
  const w = new BrowserWindow({
    width: 1100,
    height: 760,
    minWidth: 720,
    minHeight: 480,
    show: false,
    title: 'Stasis',
    icon: iconPath,
    autoHideMenuBar: true,
    webPreferences: {
      preload: join(here, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      spellcheck: false,
    },
  });
  w.once('ready-to-show', () => w.show());
  w.on('close', (e) => {
    if (quitting) return;
    e.preventDefault(); // keep running in the tray; "Quit" in the tray really quits
    w.hide();
  });
  w.on('closed', () => { if (win === w) win = null; });
  void w.loadFile(pagePath);
  return w;
}

function showWindow(): void {
  win ??= createWindow();
  if (win.isMinimized()) win.restore();
  win.show();
  win.focus();
}

function createTray(): Tray {
  const image = nativeImage.createFromPath(iconPath).resize({ width: 22, height: 22 });
  const t = new Tray(image);
  t.setToolTip('Stasis');
  t.setContextMenu(Menu.buildFromTemplate([
    { label: 'Open', click: showWindow },
    { type: 'separator' },
    { label: 'Quit', click: () => { quitting = true; app.quit(); } },
  ]));
  t.on('click', showWindow);
  return t;
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit(); // the running instance shows its window (second-instance below)
    return;
  }
  app.enableSandbox(); // every renderer, including any created later, runs sandboxed
  app.on('second-instance', showWindow);
  app.on('before-quit', () => { quitting = true; });
  app.on('window-all-closed', () => { /* stay alive in the tray */ });

  await app.whenReady();
  harden();
  const engine = new EngineHost(resolveStoreDir());
  const unwire = wireIpc(engine, () => win, pageUrl);
  engine.onEvent((event, payload) => notifyScheduleEvent(event, payload, showWindow));
  // Scheduled checkpoints run in the worker even if no window ever asks anything.
  engine.keepAlive();
  app.on('will-quit', (e) => {
    e.preventDefault();
    unwire();
    void engine.close().finally(() => app.exit(0));
  });
  tray = createTray();
  win = createWindow();
  void tray;
}

void main();
