// End to end, as a user gets it: `npm run ui` (browser mode from the built dist/), the printed URL
// opened in a real Chromium, the token traded for a cookie, the shell navigated with the keyboard,
// and the engine status round trip (renderer -> HTTP -> server -> worker -> kernel probes) on screen.
// Leaves a screenshot in test-results/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, stopServer, waitForUrl } from './browser-helpers';

const root = fileURLToPath(new URL('../..', import.meta.url));
const results = join(root, 'test-results');
let tmp: string;
let server: ChildProcess;
let url: string;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];
const sockets: { url: string; error?: string }[] = [];

before(async () => {
  if (!existsSync(join(root, 'dist', 'server.js')) || !existsSync(join(root, 'dist', 'renderer', 'index.html'))) {
    assert.equal(spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' }).status, 0, 'build failed');
  }
  tmp = mkdtempSync(join(tmpdir(), 'stasis-e2e-'));
  mkdirSync(results, { recursive: true });
  const env = { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '' };
  server = spawn(process.execPath, ['scripts/start.mjs', '--browser', '--no-open', '--store', join(tmp, 'store')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  url = await waitForUrl(server, 60_000);
  context = await launchChromium(join(tmp, 'profile'), { width: 1100, height: 760, colorScheme: 'dark' });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  page.on('websocket', (ws) => {
    const entry: { url: string; error?: string } = { url: ws.url() };
    sockets.push(entry);
    ws.on('socketerror', (e) => { entry.error = e; });
  });
});

after(async () => {
  await context?.close();
  await stopServer(server);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('browser mode shows the engine status from the real engine', async () => {
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
  await page.goto(url);
  // The token is traded for an HttpOnly cookie and leaves the address bar.
  assert.doesNotMatch(page.url(), /token=/);
  const cookies = await context.cookies();
  assert.ok(cookies.some((c) => c.name === 'stasis_token' && c.httpOnly && c.sameSite === 'Strict'));

  await page.getByRole('heading', { level: 1, name: 'Settings & Status' }).waitFor({ timeout: 30_000 });
  const kernel = page.getByTestId('kernel');
  await kernel.waitFor({ timeout: 30_000 });
  assert.match(await kernel.innerText(), new RegExp(release().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.match(await page.getByTestId('store').innerText(), new RegExp(join(tmp, 'store').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  const ptraceRow = page.getByRole('row', { name: /ptrace/ });
  assert.match(await ptraceRow.innerText(), /Yes|No|Unknown/);
  await page.screenshot({ path: join(results, 'e2e-status.png'), fullPage: true });
  assert.deepEqual(pageErrors, []);
  // The shell listens for engine events: its WebSocket got through the CSP, Origin and cookie checks.
  const events = sockets.filter((s) => new URL(s.url).pathname === '/api/events');
  assert.ok(events.length > 0, JSON.stringify(sockets));
  assert.deepEqual(events.filter((s) => s.error), []);
});

test('the shell is keyboard navigable and its pages are reachable', async () => {
  await page.goto(url.replace(/\?token=.*$/, '#/status'));
  await page.getByRole('heading', { level: 1, name: 'Settings & Status' }).waitFor();
  // Tab from the top of the page: skip link first, then the navigation.
  await page.keyboard.press('Tab');
  assert.equal(await page.locator(':focus').textContent(), 'Skip to content');
  await page.keyboard.press('Tab');
  assert.equal(await page.locator(':focus').textContent(), 'Processes');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Processes' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Processes' }).getAttribute('aria-current'), 'page');
  // The page heading takes focus, so a screen reader announces where we are.
  assert.equal(await page.locator(':focus').getAttribute('id'), 'page-title');
  for (const name of ['Checkpoints', 'Schedules', 'Receive']) {
    await page.getByRole('link', { name }).click();
    await page.getByRole('heading', { level: 1, name }).waitFor();
  }
  assert.deepEqual(pageErrors, []);
});
