/**
 * What every e2e test needs to drive the real UI: the URL browser mode prints, and Debian's
 * Chromium started the way this machine allows (headless, no sandbox as root, no background
 * networking: the closed network refuses those connections).
 */
import type { ChildProcess } from 'node:child_process';
import { chromium, type BrowserContext } from 'playwright-core';

/** Resolves with the URL (token included) from browser mode's machine-readable `STASIS_URL` line. */
export function waitForUrl(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`browser mode printed no URL within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^STASIS_URL (\S+)$/m.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`browser mode exited (${code}) before printing its URL:\n${out}`)); });
  });
}

/** Chromium with a fresh profile directory. */
export function launchChromium(profileDir: string, view: { width: number; height: number; colorScheme?: 'light' | 'dark' }): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: view.width, height: view.height },
    ...(view.colorScheme ? { colorScheme: view.colorScheme } : {}),
  });
}

/** Stops browser mode: SIGTERM (it closes the server and the engine), SIGKILL after 5 s. */
export async function stopServer(server: ChildProcess | undefined): Promise<void> {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (server.exitCode === null) server.kill('SIGKILL');
}
