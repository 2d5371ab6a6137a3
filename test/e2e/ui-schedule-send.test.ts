// A schedule's "also send to" from the UI, end to end in Debian Chromium: two browser-mode servers
// with their own stores (A runs the schedules; B receives; B's page is opened as localhost so the
// two session cookies do not collide). B's Receive page keeps listening on 127.0.0.1; A's New
// schedule dialog refuses a bad address with the contract's message, then creates a schedule of a
// real process every 2 s that also sends to B with B's token: the row shows each send (ok, the id
// there, bytes) and never the token; B lists the replicated checkpoints as they land. B stops
// listening: A's runs go on committing, and the row shows the failed send with its reason. B
// listens again with a new token, which the row's Change… dialog gives the schedule: sends
// succeed again. Stop sending clears the destination.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, stopServer, waitForUrl } from './browser-helpers';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';

const root = fileURLToPath(new URL('../..', import.meta.url));
const results = join(root, 'test-results');
const updateDocs = process.env.STASIS_UPDATE_SCREENSHOTS === '1';
let tmp: string;
let serverA: ChildProcess;
let serverB: ChildProcess;
let baseA: string;
let baseB: string;
let context: BrowserContext;
let a: Page;
let b: Page;
let target: DetachedProcess;
const pageErrors: string[] = [];

async function shot(p: Page, name: string): Promise<void> {
  mkdirSync(results, { recursive: true });
  await p.screenshot({ path: join(results, `ui-${name}.png`) });
  if (updateDocs) copyFileSync(join(results, `ui-${name}.png`), join(root, 'docs', 'screenshots', `${name}.png`));
}

function startServer(store: string, scheduler: boolean): ChildProcess {
  const env = { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', STASIS_SCHEDULER: scheduler ? '1' : '0' };
  return spawn(process.execPath, ['scripts/start.mjs', '--browser', '--no-open', '--store', store], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  assert.equal(spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' }).status, 0, 'build failed');
  tmp = mkdtempSync(join(tmpdir(), 'stasis-e2e-sendto-'));
  target = spawnDetached([buildFixture('schedule-target')]);
  serverA = startServer(join(tmp, 'store-a'), true);
  serverB = startServer(join(tmp, 'store-b'), false);
  const [urlA, urlB] = await Promise.all([waitForUrl(serverA, 60_000), waitForUrl(serverB, 60_000)]);
  context = await launchChromium(join(tmp, 'profile'), { width: 1280, height: 820 });
  a = context.pages()[0] ?? (await context.newPage());
  b = await context.newPage();
  for (const p of [a, b]) {
    p.setDefaultTimeout(30_000);
    p.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    p.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  }
  const local = urlB.replace('//127.0.0.1:', '//localhost:');
  await a.goto(urlA);
  await b.goto(local);
  baseA = urlA.replace(/\?token=.*$/, '');
  baseB = local.replace(/\?token=.*$/, '');
});

after(async () => {
  target?.kill();
  await context?.close();
  await Promise.all([stopServer(serverA), stopServer(serverB)]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('Schedules: "also send to" another machine; each run\'s send and its failure show in the row, never the token', async () => {
  // B keeps listening: a schedule sends once per run, with the same token.
  await b.goto(`${baseB}#/receive`);
  await b.getByLabel(/^Listen on/).fill('127.0.0.1:0');
  await b.getByRole('checkbox', { name: /Keep listening after each transfer/ }).check();
  await b.getByRole('button', { name: 'Start listening' }).click();
  const address = (await b.getByTestId('receive-address').innerText()).trim();
  const token = await b.getByTestId('receive-token').inputValue();
  assert.match(await b.getByTestId('receive-keep').innerText(), /every sender with this token, until stopped/);

  await a.goto(`${baseA}#/schedules`);
  await a.getByRole('button', { name: 'New schedule…' }).click();
  await a.getByLabel('PID', { exact: true }).fill(String(target.pid));
  await a.getByLabel(/^Every/).fill('2');
  await a.getByLabel(/^Keep the last/).fill('');
  // A bad address: the contract says which field and why; nothing is created.
  await a.getByLabel('Address (HOST:PORT)').fill('127.0.0.1');
  await a.getByLabel('Pairing token').fill(token);
  await a.getByRole('button', { name: 'Create' }).click();
  assert.match(await a.getByRole('alert').innerText(), /INVALID_INPUT.*sendTo\.address: give HOST:PORT/s);
  await a.getByLabel('Address (HOST:PORT)').fill(address);
  await shot(a, 'schedule-send-new');
  await a.getByRole('button', { name: 'Create' }).click();

  const row = a.getByTestId('schedule-row').first();
  await row.waitFor();
  // Pushed by the engine (schedule.send), no reload.
  await row.locator('[data-testid="last-send"][data-result="ok"]').waitFor({ timeout: 90_000 });
  assert.match(await row.getByTestId('last-send').innerText(), /^sent #\d+ at .* \(#\d+ there, [\d.]+ (B|KiB|MiB)\)$/);
  assert.match(await row.innerText(), new RegExp(`${address.replace(/\./g, '\\.')}\\s+token …${token.slice(-4).replace(/[-]/g, '\\-')}`));
  assert.ok(!(await a.content()).includes(token.slice(8)), 'the token is on A\'s page');
  // Each pushed event re-reads the list; shoot the row, not the moment it is re-read.
  await row.locator('[data-testid="last-send"][data-result="ok"]').waitFor();
  await shot(a, 'schedule-send');

  // B lists what arrived, as each checkpoint lands.
  await b.locator('[data-testid="arrival"][data-kind="replicated"]').first().waitFor({ timeout: 30_000 });
  assert.match(await b.locator('[data-testid="arrival"][data-kind="replicated"]').first().innerText(), /Replicated[\s\S]*Replicated checkpoint\(s\) #\d+/);
  await shot(b, 'receive-replicated');

  // B stops listening: A's runs still commit, and the row says why the send failed.
  await b.getByRole('button', { name: 'Stop listening' }).click();
  await row.locator('[data-testid="last-send"][data-result="failed"]').waitFor({ timeout: 60_000 });
  assert.match(await row.getByTestId('send-error').innerText(), /Cannot send to .*ECONNREFUSED/);
  assert.match(await row.getByTestId('last-result').innerText(), /^ok at /);
  await row.getByRole('button', { name: 'History' }).waitFor();
  await shot(a, 'schedule-send-failed');
  // B listens again: a new address and a new token, given to the schedule from its row.
  await b.getByRole('button', { name: 'Start listening' }).click();
  const address2 = (await b.getByTestId('receive-address').innerText()).trim();
  const token2 = await b.getByTestId('receive-token').inputValue();
  assert.notEqual(token2, token);
  await row.getByRole('button', { name: /^Change where schedule \d+ sends its checkpoints$/ }).click();
  const dialog = a.getByRole('dialog');
  assert.equal(await dialog.getByLabel('Address (HOST:PORT)').inputValue(), address, 'the address is kept, the token is not shown');
  assert.equal(await dialog.getByLabel('Pairing token').inputValue(), '');
  await dialog.getByLabel('Address (HOST:PORT)').fill(address2);
  await dialog.getByLabel('Pairing token').fill(token2);
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'detached' });
  // The list is read again after the save: until then the row shows the old destination.
  await row.getByText(address2, { exact: true }).waitFor();
  assert.match(await row.innerText(), new RegExp(`${address2.replace(/[.[\]]/g, '\\$&')}\\s+token …${token2.slice(-4).replace(/[-]/g, '\\-')}`));
  await row.locator('[data-testid="last-send"][data-result="ok"]').waitFor({ timeout: 90_000 });
  // Stop sending: the checkpoints stay here, nothing more is sent; a destination can be given again.
  await row.getByRole('button', { name: /^Stop sending schedule \d+'s checkpoints$/ }).click();
  await row.getByTestId('send-none').waitFor();
  await row.getByRole('button', { name: /^Send schedule \d+'s checkpoints to another machine$/ }).waitFor();
  // The browser logs the 400 reply to the bad address; nothing else.
  assert.deepEqual(pageErrors, ['console: Failed to load resource: the server responded with a status of 400 (Bad Request)']);
});
