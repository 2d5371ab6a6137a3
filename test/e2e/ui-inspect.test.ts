// Looking inside checkpoints from the UI, end to end in Debian Chromium through browser mode with
// the real engine: the inspect-plant fixture plants "SPAN-PAGE-BOUNDARY" across a page boundary in
// generations 0 and 1 and wipes it in generation 2; three checkpoints are taken from the Processes
// page. The Search tab must find it once, first in the first checkpoint and last in the second, mark
// those two on the timeline (not the third), and open it in the page viewer scrolled to it, with the
// highlighted bytes and every row shown equal to /proc/PID/mem at checkpoint time, rendering only
// the rows in view; the memory map opens the same viewer. The Details tab shows the environment
// masked, and the real value only after Reveal. A bad regular expression shows the engine's error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, stopServer, waitForUrl } from './browser-helpers';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { waitFor, waitForFile } from '../capture/common';

const root = fileURLToPath(new URL('../..', import.meta.url));
const results = join(root, 'test-results');
const updateDocs = process.env.STASIS_UPDATE_SCREENSHOTS === '1';
const SECRET = 'hunter2-not-for-the-page';
const NEEDLE = 'SPAN-PAGE-BOUNDARY';
let tmp: string;
let server: ChildProcess;
let base: string;
let context: BrowserContext;
let page: Page;
let target: DetachedProcess;
const pageErrors: string[] = [];

/** Polls an async probe (page reads) until it holds, or fails after timeoutMs. */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A screenshot to test-results/, and to docs/screenshots/ with STASIS_UPDATE_SCREENSHOTS=1 (`npm run screenshots`). */
async function shot(name: string): Promise<void> {
  mkdirSync(results, { recursive: true });
  await page.screenshot({ path: join(results, `ui-${name}.png`) });
  if (updateDocs) copyFileSync(join(results, `ui-${name}.png`), join(root, 'docs', 'screenshots', `${name}.png`));
}

function info(dir: string): { a: bigint; gen: number } {
  const txt = readFileSync(join(dir, 'info.txt'), 'utf8');
  const get = (k: string): string => new RegExp(`^${k} (\\S+)$`, 'm').exec(txt)![1]!;
  return { a: BigInt(`0x${get('a')}`), gen: Number(get('gen')) };
}

function procMem(pid: number, addr: bigint, len: number): Buffer {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    const b = Buffer.alloc(len);
    assert.equal(readSync(fd, b, 0, len, Number(addr)), len);
    return b;
  } finally { closeSync(fd); }
}

before(async () => {
  assert.equal(spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' }).status, 0, 'build failed');
  tmp = mkdtempSync(join(tmpdir(), 'stasis-e2e-inspect-'));
  const dir = join(tmp, 'plant');
  mkdirSync(dir);
  target = spawnDetached([buildFixture('inspect-plant'), dir], { env: { ...process.env, STASIS_TEST_SECRET: SECRET } });
  await waitForFile(join(dir, 'info.txt'), 60_000);
  const env = { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', STASIS_SCHEDULER: '0' };
  server = spawn(process.execPath, ['scripts/start.mjs', '--browser', '--no-open', '--store', join(tmp, 'store')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await waitForUrl(server, 60_000);
  context = await launchChromium(join(tmp, 'profile'), { width: 1200, height: 800 });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  await page.goto(url);
  base = url.replace(/\?token=.*$/, '');
});

after(async () => {
  target?.kill();
  await context?.close();
  await stopServer(server);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The hex and ASCII cells of the highlighted bytes, once all of them are loaded. */
async function highlighted(): Promise<{ hex: string; ascii: string }> {
  const hex = page.locator('.hexview .hx.hl');
  await until('the highlighted bytes to load', async () => {
    const t = await hex.allInnerTexts();
    return t.length === NEEDLE.length && !t.includes('··');
  });
  // Scrolled to: the match is inside the visible part of the view, not just in the DOM.
  await until('the match to be scrolled into view', async () => (await page.evaluate(`(() => {
    const box = document.querySelector('.hexview').getBoundingClientRect();
    return Array.from(document.querySelectorAll('.hexview .hl'), (e) => e.getBoundingClientRect()).every((r) => r.top >= box.top && r.bottom <= box.bottom);
  })()`)) as boolean, 5000);
  return { hex: (await hex.allInnerTexts()).join(''), ascii: (await page.locator('.hexview .as.hl').allInnerTexts()).join('') };
}

/** Every loaded row in the DOM compared with `truth` (the bytes of region A from address a); returns rows in the DOM and rows compared. */
async function assertRowsMatch(a: bigint, truth: Buffer): Promise<{ inDom: number; compared: number }> {
  // Page code as a string: this file is type-checked without the DOM library.
  const rows = (await page.evaluate(`Array.from(document.querySelectorAll('[data-testid="hex-row"]'), (el) => ({
    address: el.getAttribute('data-address'),
    hex: Array.from(el.querySelectorAll('.hx'), (x) => x.textContent).join(''),
  }))`)) as { address: string; hex: string }[];
  let compared = 0;
  for (const r of rows) {
    const off = Number(BigInt(r.address) - a);
    if (r.hex.includes('··') || off < 0 || off + 16 > truth.length) continue;
    assert.equal(r.hex, truth.toString('hex', off, off + 16), `row ${r.address}`);
    compared++;
  }
  return { inDom: rows.length, compared };
}

test('search from the UI finds the planted string, marks the timeline, opens it in the page viewer; Details masks the environment', async () => {
  const dir = join(tmp, 'plant');
  const { a } = info(dir);
  // Three checkpoints from the Processes page, one per generation; /proc/PID/mem right after each.
  const ids: number[] = [];
  const truth: Buffer[] = [];
  for (let gen = 0; gen < 3; gen++) {
    if (gen > 0) {
      target.kill('SIGUSR1');
      await waitFor(`generation ${gen}`, () => info(dir).gen === gen);
    }
    await page.goto(`${base}#/processes`);
    await page.getByLabel('Search').fill(String(target.pid));
    await page.getByRole('button', { name: new RegExp(`PID ${target.pid}\\) now`) }).click();
    await page.getByRole('button', { name: 'Checkpoint now', exact: true }).click();
    ids.push(Number((await page.getByTestId('checkpoint-id').innerText({ timeout: 60_000 })).replace('#', '')));
    truth.push(procMem(target.pid, a, 4 * 4096));
    await page.getByRole('button', { name: 'Close', exact: true }).last().click();
  }
  assert.equal(truth[1]!.toString('latin1', 4096 - 9, 4096 + 9), NEEDLE);
  assert.equal(truth[2]!.toString('latin1', 4096 - 9, 4096 + 9), '#'.repeat(18));

  // Search tab: one match, first #1 last #2, with its context.
  await page.goto(`${base}#/checkpoints`);
  await page.getByRole('tab', { name: 'Search' }).click();
  await page.getByLabel('Pattern').fill(NEEDLE);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const summary = await page.getByTestId('search-summary').innerText({ timeout: 60_000 });
  assert.match(summary, /^1 match in 3 checkpoints: read .* of distinct pages for .* of memory/);
  const hits = page.getByTestId('search-hit');
  assert.equal(await hits.count(), 1);
  const hit = hits.first();
  const address = `0x${(a + 4096n - 9n).toString(16)}`;
  assert.equal(await hit.getAttribute('data-address'), address);
  assert.equal(await hit.getByTestId('hit-first').innerText(), `#${ids[0]}`);
  assert.equal(await hit.getByTestId('hit-last').innerText(), `#${ids[1]}`);
  assert.match(await hit.locator('mark').innerText(), new RegExp(`^${NEEDLE}$`));

  // Timeline marks: the two checkpoints holding it, not the third.
  for (const [i, want] of [[0, '1 found'], [1, '1 found']] as const) {
    assert.equal(await page.locator(`[data-testid="timeline-row"][data-id="${ids[i]}"] [data-testid="row-hits"]`).innerText(), want);
  }
  assert.equal(await page.locator(`[data-testid="timeline-row"][data-id="${ids[2]}"] [data-testid="row-hits"]`).count(), 0);
  await shot('search');

  // The hit opens in the page viewer: the newest checkpoint (selected) does not hold it, so the last that does.
  await hit.getByRole('button', { name: address }).click();
  const dialog = page.getByRole('dialog', { name: `Memory of checkpoint #${ids[1]}` });
  await dialog.waitFor();
  const shown = await highlighted();
  assert.equal(shown.hex, Buffer.from(NEEDLE).toString('hex'));
  assert.equal(shown.ascii, NEEDLE);
  // Virtualised: region A is 1,024 rows; only those in view (and a few around) are in the DOM.
  const { inDom, compared } = await assertRowsMatch(a, truth[1]!);
  assert.ok(inDom > 10 && inDom <= 60, `${inDom} rows in the DOM`);
  assert.ok(compared >= 10, `${compared} rows compared`);
  await shot('page-viewer');
  // The same place in the third checkpoint: wiped.
  await dialog.getByRole('combobox').selectOption(String(ids[2]));
  await page.getByRole('dialog', { name: `Memory of checkpoint #${ids[2]}` }).waitFor();
  assert.deepEqual(await highlighted(), { hex: Buffer.from('#'.repeat(18)).toString('hex'), ascii: '#'.repeat(18) });
  assert.ok((await assertRowsMatch(a, truth[2]!)).compared >= 10);
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });

  // The memory map opens the viewer at a mapping's start (checkpoint tab, newest checkpoint).
  await page.getByRole('tab', { name: `Checkpoint #${ids[2]}` }).click();
  await page.getByRole('button', { name: `View the bytes of [anonymous] at 0x${a.toString(16)}` }).click();
  await page.getByRole('dialog', { name: `Memory of checkpoint #${ids[2]}` }).waitFor();
  await until('the first row to load', async () => !(await page.locator(`[data-testid="hex-row"][data-address="0x${a.toString(16).padStart(12, '0')}"]`).innerText()).includes('··'));
  assert.ok((await assertRowsMatch(a, truth[2]!)).compared >= 10);
  assert.equal(await page.locator(`[data-testid="hex-row"][data-address="0x${a.toString(16).padStart(12, '0')}"] .ascii`).innerText(), 'a'.repeat(16));
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });

  // Details: environment values masked; Reveal asks the engine for them.
  await page.getByRole('tab', { name: 'Details' }).click();
  const env = page.getByTestId('details-env');
  await env.waitFor();
  assert.match(await env.innerText(), /^STASIS_TEST_SECRET=\*\*\*\*$/m);
  assert.ok(!(await page.locator('main').innerText()).includes(SECRET), 'the secret is not on the page');
  assert.match(await page.getByTestId('details-cmdline').innerText(), /inspect-plant/);
  await shot('details');
  await page.getByRole('button', { name: 'Reveal values' }).click();
  await until('the revealed value', async () => (await env.innerText()).includes(`STASIS_TEST_SECRET=${SECRET}`));
  assert.deepEqual(pageErrors, []);

  // A bad regular expression: the engine's INVALID_INPUT, shown as the error; no results, no marks.
  await page.getByRole('tab', { name: 'Search' }).click();
  await page.getByLabel('Pattern').fill('(unclosed');
  await page.getByLabel('Regular expression').check();
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  assert.match(await page.getByRole('tabpanel').getByRole('alert').innerText(), /INVALID_INPUT/);
  assert.equal(await page.getByTestId('search-hit').count(), 0);
  assert.equal(await page.getByTestId('row-hits').count(), 0);
  // The browser logs the 400 reply of that call; nothing else.
  assert.deepEqual(pageErrors, ['console: Failed to load resource: the server responded with a status of 400 (Bad Request)']);
});
