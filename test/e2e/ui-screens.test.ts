// The desktop UI end to end in Debian Chromium through browser mode with the real engine: launch a
// C fixture through the Launch dialog, checkpoint it twice from the Processes page, see both in the
// timeline with the engine's sizes and changed pages and the memory map heatmap, diff them, restore
// the first through the wizard and see the restored process running and continuing, a failing
// pre-flight blocking the wizard with its reason, and the manage actions (pin, label, stats, verify,
// gc, export, import, delete). A screenshot of every screen goes to test-results/, and to docs/screenshots/ with
// STASIS_UPDATE_SCREENSHOTS=1 (`npm run screenshots`), so a plain test run leaves the tree clean.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, stopServer, waitForUrl } from './browser-helpers';
import { buildFixture } from '../helpers/fixtures';
// @ts-expect-error: plain .mjs helper shared by scripts/start.mjs and bin/stasis.js, no type declarations
import { upToDate } from '../../scripts/lib/freshness.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const results = join(root, 'test-results');
const docs = join(root, 'docs', 'screenshots');
const updateDocs = process.env.STASIS_UPDATE_SCREENSHOTS === '1';
let tmp: string;
let server: ChildProcess;
let url: string;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];
const pids: number[] = [];

async function until<T>(what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function shot(name: string): Promise<void> {
  await page.waitForTimeout(150); // let the canvas heatmaps and fonts settle
  await page.screenshot({ path: join(results, `ui-${name}.png`) });
  if (updateDocs) copyFileSync(join(results, `ui-${name}.png`), join(docs, `${name}.png`));
}

/** The engine's own answer, through the same authenticated HTTP API the page uses. */
async function engine<T>(name: string, input: unknown = {}): Promise<T> {
  const reply = await page.evaluate(async ([n, i]) => {
    const r = await fetch(`/api/call/${n}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(i) });
    return r.json() as Promise<{ ok: boolean; value?: unknown; error?: { message: string } }>;
  }, [name, input] as const);
  if (!reply.ok) throw new Error(`${name} failed: ${reply.error?.message}`);
  return reply.value as T;
}

/** Polls get() until it returns want (the page applies a setting asynchronously), or fails after 10 s. */
async function waitForValue<T>(get: () => Promise<T>, want: T): Promise<void> {
  const end = Date.now() + 10_000;
  let got = await get();
  while (got !== want) {
    if (Date.now() > end) assert.fail(`expected ${String(want)}, still ${String(got)}`);
    await page.waitForTimeout(100);
    got = await get();
  }
}

function alive(pid: number): boolean {
  try { return !/^State:\s+[ZX]/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; }
}

/** "tick N pid P" lines of the counter's log. */
function ticks(log: string): { n: number; pid: number }[] {
  return [...readFileSync(log, 'utf8').matchAll(/^tick (\d+) pid (\d+)$/gm)].map((m) => ({ n: Number(m[1]), pid: Number(m[2]) }));
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

interface Ckpt { id: number; targetId: number; label: string | null; pinned: boolean; stats: { pagesChanged: number; bytesWritten: number } }

/**
 * Browser mode as `npm run ui` runs it (dist/server.js, built if older than the sources), from a
 * private copy of dist/: other engineers rebuild dist/ while this runs, and a rebuild deletes it.
 */
function startBrowserMode(store: string): ChildProcess {
  const outputs = ['engine-worker.js', 'server.js', 'renderer/index.html'].map((f) => join(root, 'dist', f));
  const fresh = (upToDate as (o: string[], d: string[], w: (n: string) => boolean) => boolean)(outputs, ['electron', 'shared', 'renderer'].map((d) => join(root, d)), (n) => /\.(ts|tsx|css|html)$/.test(n));
  if (!fresh) assert.equal(spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' }).status, 0, 'build failed');
  const app = join(tmp, 'app');
  cpSync(join(root, 'dist'), join(app, 'dist'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(app, 'node_modules'));
  const env = { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '' };
  return spawn(process.execPath, [join(app, 'dist', 'server.js'), '--no-open', '--store', store], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'stasis-ui-e2e-'));
  mkdirSync(results, { recursive: true });
  if (updateDocs) mkdirSync(docs, { recursive: true });
  server = startBrowserMode(join(tmp, 'store'));
  url = await waitForUrl(server, 90_000);
  context = await launchChromium(join(tmp, 'profile'), { width: 1024, height: 700, colorScheme: 'light' });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  await page.goto(url);
});

after(async () => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
  await context?.close();
  await stopServer(server);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The steps build on each other: once one fails, the later ones are skipped instead of timing out. */
let broken = false;
function step(name: string, fn: () => Promise<void>): void {
  test(name, async (t) => {
    if (broken) { t.skip('an earlier step failed'); return; }
    try { await fn(); } catch (err) { broken = true; throw err; }
  });
}

const state: { pid: number; log: string; ready: string; first: number; second: number; ticksAtFirst: number[] } = { pid: 0, log: '', ready: '', first: 0, second: 0, ticksAtFirst: [] };

async function launch(ready: string, cwd: string, name: string): Promise<void> {
  await page.goto(url.replace(/\?token=.*$/, '#/processes'));
  await page.getByRole('heading', { level: 1, name: 'Processes' }).waitFor();
  await page.getByRole('button', { name: 'Launch program…' }).click();
  await page.getByLabel('Command line').fill(`${buildFixture('ui-counter')} ${ready}`);
  await page.getByLabel('Working directory (optional)').fill(cwd);
  await page.getByLabel(/^Name/).fill(name);
}

async function checkpointFromProcesses(pid: number, label: string, log?: string): Promise<{ id: number; text: string; ticksBefore: number; ticksAfter: number }> {
  await page.goto(url.replace(/\?token=.*$/, '#/processes'));
  await page.getByLabel('Search').fill(String(pid));
  await page.getByRole('button', { name: new RegExp(`PID ${pid}\\) now`) }).click();
  await page.getByLabel('Label (optional)').fill(label);
  const ticksBefore = log ? ticks(log).at(-1)?.n ?? 0 : 0;
  await page.getByRole('button', { name: 'Checkpoint now', exact: true }).click();
  const idText = await page.getByTestId('checkpoint-id').innerText({ timeout: 30_000 });
  const ticksAfter = log ? ticks(log).at(-1)?.n ?? 0 : 0;
  const text = await page.getByRole('dialog').innerText();
  return { id: Number(idText.replace('#', '')), text, ticksBefore, ticksAfter };
}

step('Processes: launch a program through the dialog and see it listed as checkpointable', async () => {
  const work = join(tmp, 'work');
  mkdirSync(work);
  state.ready = join(tmp, 'ready');
  await launch(state.ready, work, 'ui-counter');
  await shot('launch-dialog');
  await page.getByRole('button', { name: 'Launch', exact: true }).click();
  state.pid = Number(await page.getByTestId('launched-pid').innerText({ timeout: 20_000 }));
  pids.push(state.pid);
  state.log = await page.getByTestId('launch-log').innerText();
  await until('the fixture to be ready', () => existsSync(state.ready) && readFileSync(state.ready, 'utf8').includes(`ready ${state.pid}`));
  await page.getByRole('button', { name: 'Close', exact: true }).last().click();
  // The list is filtered to the new PID and says it can be checkpointed.
  const row = page.locator(`tr[data-pid="${state.pid}"]`);
  await row.waitFor({ timeout: 10_000 });
  assert.match(await row.innerText(), /ui-counter[\s\S]*Yes/);
  // The user column names the user (from /etc/passwd through the engine), not a bare uid.
  const userName = /^([^:]+):[^:]*:(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[2] === String(process.getuid!())) ?? '')?.[1];
  assert.ok(userName);
  assert.equal(await row.getByTestId('user').innerText(), userName);
  await page.getByLabel('Search').fill('');
  await shot('processes');
  assert.deepEqual(pageErrors, []);
});

step('Processes: checkpoint it twice with labels; the second is incremental with the dirtied pages', async () => {
  const c1 = await checkpointFromProcesses(state.pid, 'first', state.log);
  state.ticksAtFirst = [c1.ticksBefore, c1.ticksAfter];
  assert.match(c1.text, /full/);
  await shot('checkpoint-dialog');
  await page.getByRole('button', { name: 'Close', exact: true }).last().click();
  process.kill(state.pid, 'SIGUSR1'); // the fixture rewrites 64 pages of its buffer
  await until('the fixture to dirty its pages', () => /^dirtied /m.test(readFileSync(state.log, 'utf8')));
  const c2 = await checkpointFromProcesses(state.pid, 'second');
  assert.match(c2.text, /incremental/);
  state.first = c1.id;
  state.second = c2.id;
  assert.ok(c2.id > c1.id);
  assert.deepEqual(pageErrors, []);
});

step('Checkpoints: the timeline shows both with the engine\'s sizes and changed pages, and the memory map', async () => {
  await page.getByRole('button', { name: 'Show in timeline' }).click();
  await page.getByRole('heading', { level: 1, name: 'Checkpoints' }).waitFor();
  const { checkpoints } = await engine<{ checkpoints: Ckpt[] }>('checkpoints.list');
  const [one, two] = [state.first, state.second].map((id) => checkpoints.find((c) => c.id === id)!);
  // The dirtied 64 pages are in the second; the first (full) holds every page.
  assert.ok(two.stats.pagesChanged >= 64, `second changed ${two.stats.pagesChanged} pages`);
  assert.ok(one.stats.pagesChanged > two.stats.pagesChanged);
  for (const c of [one, two]) {
    const row = page.locator(`[data-testid="timeline-row"][data-id="${c.id}"]`);
    await row.waitFor();
    assert.equal(await row.getByTestId('row-changed').innerText(), `${c.stats.pagesChanged.toLocaleString('en-US')} pages`);
    assert.equal(await row.getByTestId('row-bytes').innerText(), formatBytes(c.stats.bytesWritten));
    assert.match(await row.innerText(), new RegExp(c.label!));
  }
  // Opened on the second (from "Show in timeline"): its memory map has a mapping with >= 63 changed pages.
  assert.match(await page.getByRole('heading', { name: /Checkpoint #\d+ — second/ }).innerText(), new RegExp(`#${state.second}`));
  await page.getByTestId('mapping').first().waitFor();
  const changed = (await page.getByTestId('mapping-changed').allInnerTexts()).map((t) => Number(t.replace(/\D/g, '')));
  const shown = await engine<{ mappings: { changedPages: number }[] }>('checkpoints.show', { id: state.second });
  assert.deepEqual(changed, shown.mappings.map((m) => m.changedPages));
  assert.ok(Math.max(...changed) >= 63, `most changed in one mapping: ${Math.max(...changed)}`);
  await shot('checkpoints');
  await page.locator('.memmap').scrollIntoViewIfNeeded();
  await page.getByTestId('mapping').nth(5).scrollIntoViewIfNeeded();
  await shot('memory-map');
  assert.deepEqual(pageErrors, []);
});

step('Diff: the two checkpoints compared per mapping', async () => {
  await page.getByRole('button', { name: 'Compare…' }).click();
  const totals = await page.getByTestId('diff-totals').innerText({ timeout: 20_000 });
  const d = await engine<{ changedPages: number; mappings: unknown[] }>('checkpoints.diff', { a: state.first, b: state.second });
  assert.ok(d.changedPages >= 64);
  assert.match(totals, new RegExp(`From #${state.first} to #${state.second}: ${d.changedPages} pages changed`));
  assert.equal(await page.getByTestId('diff-row').count(), d.mappings.length);
  await shot('diff');
  await page.keyboard.press('Escape');
  assert.deepEqual(pageErrors, []);
});

step('Restore wizard: restore the first checkpoint; the restored process runs and keeps counting', async () => {
  // Keyboard: the timeline is a list box; End selects the oldest (the first checkpoint).
  await page.getByRole('listbox', { name: /Timeline/ }).focus();
  await page.keyboard.press('End');
  await page.getByRole('heading', { name: new RegExp(`Checkpoint #${state.first} — first`) }).waitFor();
  await page.getByRole('button', { name: 'Restore…' }).click();
  await shot('restore-choose');
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  const summary = await page.getByTestId('preflight-summary').innerText({ timeout: 20_000 });
  assert.match(summary, /^All \d+ checks pass\.$/);
  await shot('restore-preflight');
  await page.getByRole('button', { name: 'Next' }).click();
  await shot('restore-options');
  await page.getByRole('button', { name: 'Restore', exact: true }).click();
  const newPid = Number(await page.getByTestId('restored-pid').innerText({ timeout: 30_000 }));
  pids.push(newPid);
  await shot('restore-result');
  assert.ok(alive(newPid), 'the restored process runs');
  assert.ok(alive(state.pid), 'the original was kept running');
  // The restored copy writes to the same log (the file was reopened) with its own PID, counting on
  // from where the first checkpoint was taken.
  const mine = await until('the restored process to print', () => { const t = ticks(state.log).filter((x) => x.pid === newPid); return t.length >= 5 ? t : null; });
  // The counter was between these two values when the first checkpoint froze it; it goes on from there.
  const [lo, hi] = state.ticksAtFirst;
  assert.ok(mine[0].n >= lo && mine[0].n <= hi + 1, `restored counter starts at ${mine[0].n}; the first checkpoint was taken between ticks ${lo} and ${hi}`);
  assert.ok(ticks(state.log).filter((x) => x.pid === state.pid).at(-1)!.n > hi + 10, 'the original has counted well past it');
  for (let i = 1; i < mine.length; i++) assert.equal(mine[i].n, mine[i - 1].n + 1);
  await page.getByRole('button', { name: 'Show the process' }).click();
  await page.locator(`tr[data-pid="${newPid}"]`).waitFor({ timeout: 10_000 });
  assert.deepEqual(pageErrors, []);
});

step('Restore wizard: a failing pre-flight blocks it with the engine\'s reason', async () => {
  const doomed = join(tmp, 'doomed');
  mkdirSync(doomed);
  const ready = join(tmp, 'ready2');
  await launch(ready, doomed, 'ui-doomed');
  await page.getByRole('button', { name: 'Launch', exact: true }).click();
  const pid = Number(await page.getByTestId('launched-pid').innerText({ timeout: 20_000 }));
  pids.push(pid);
  await until('the second fixture to be ready', () => existsSync(ready));
  const c = await engine<{ id: number }>('capture.checkpoint', { pid, label: 'cwd removed' });
  process.kill(pid, 'SIGKILL');
  rmSync(doomed, { recursive: true, force: true });
  await page.goto(url.replace(/\?token=.*$/, '#/checkpoints'));
  const { checkpoints } = await engine<{ checkpoints: Ckpt[] }>('checkpoints.list');
  await page.getByLabel('Process').selectOption(String(checkpoints.find((x) => x.id === c.id)!.targetId));
  await page.getByRole('heading', { name: new RegExp(`Checkpoint #${c.id}`) }).waitFor();
  await page.getByRole('button', { name: 'Restore…' }).click();
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  const summary = await page.getByTestId('preflight-summary').innerText({ timeout: 20_000 });
  assert.match(summary, /^Restore is blocked: 1 of \d+ checks fail/);
  const failing = page.locator('[data-testid="preflight-item"].fail');
  assert.equal(await failing.count(), 1);
  assert.match(await failing.innerText(), new RegExp(`Working directory exists[\\s\\S]*${doomed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} no longer exists[\\s\\S]*Fix: Recreate the directory`));
  assert.equal(await page.getByRole('button', { name: 'Next' }).isDisabled(), true);
  await shot('restore-blocked');
  await page.keyboard.press('Escape');
  assert.deepEqual(pageErrors, []);
});

step('Manage: pin, label and notes, store stats, verify, gc, export core and stream, import, delete', async () => {
  await page.goto(url.replace(/\?token=.*$/, '#/processes'));
  await page.goto(url.replace(/\?token=.*$/, '#/checkpoints'));
  const { checkpoints: before } = await engine<{ checkpoints: Ckpt[] }>('checkpoints.list');
  await page.getByLabel('Process').selectOption(String(before.find((x) => x.id === state.first)!.targetId));
  await page.getByRole('listbox', { name: /Timeline/ }).focus();
  await page.keyboard.press('End');
  await page.getByRole('heading', { name: new RegExp(`Checkpoint #${state.first}`) }).waitFor();
  await page.getByRole('button', { name: 'Pin', exact: true }).click();
  await page.getByRole('button', { name: 'Unpin' }).waitFor();
  await page.getByRole('button', { name: 'Label & notes…' }).click();
  await page.getByLabel('Label', { exact: true }).fill('first, kept');
  await page.getByLabel('Notes', { exact: true }).fill('Before the buffer was rewritten.');
  await shot('label-notes');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: `Checkpoint #${state.first} — first, kept` }).waitFor();
  const one = (await engine<{ checkpoints: Ckpt[] }>('checkpoints.list')).checkpoints.find((x) => x.id === state.first)!;
  assert.equal(one.pinned, true);
  assert.equal(one.label, 'first, kept');

  // Export an ELF core file and a stream file: written by the engine into the store, then
  // downloaded by the browser (browser mode) through the single-use Download link.
  const core = join(tmp, 'first.core');
  await page.getByRole('button', { name: 'Export…' }).click();
  await page.getByRole('button', { name: 'Export', exact: true }).click();
  const link = page.getByTestId('download-link');
  await link.waitFor({ timeout: 30_000 });
  const [coreDownload] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(coreDownload.suggestedFilename(), `stasis-${state.first}.core`);
  await coreDownload.saveAs(core);
  assert.ok(statSync(core).size > 0);
  assert.equal(readFileSync(core).subarray(0, 4).toString('latin1'), '\x7fELF');
  await page.getByRole('button', { name: 'Close', exact: true }).last().click();
  const stream = join(tmp, 'first.stasis');
  await page.getByRole('button', { name: 'Export…' }).click();
  await page.getByLabel('Stream: flattened into one full checkpoint').check();
  await shot('export');
  await page.getByRole('button', { name: 'Export', exact: true }).click();
  await link.waitFor({ timeout: 30_000 });
  await shot('export-download');
  const [streamDownload] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(streamDownload.suggestedFilename(), `stasis-${state.first}-flattened.stasis`);
  await streamDownload.saveAs(stream);
  assert.ok(statSync(stream).size > 0);
  await page.getByRole('button', { name: 'Close', exact: true }).last().click();

  // Store panel: stats, verify, gc, import the stream.
  await page.getByRole('button', { name: 'Store…', exact: true }).click();
  const stats = await page.getByTestId('store-stats').innerText({ timeout: 10_000 });
  assert.match(stats, /checkpoints of \d+ processes/);
  // Block compression: the setting goes to the engine and stays (the import below is written with it).
  const compression = page.getByLabel('Compress new checkpoints');
  assert.equal(await compression.inputValue(), 'none');
  await compression.selectOption('lz4');
  await waitForValue(async () => (await engine<{ compression: string }>('store.config')).compression, 'lz4');
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText('Verified: every checkpoint reads back intact.').waitFor({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Collect garbage' }).click();
  await page.getByText(/^Garbage collection reclaimed/).waitFor({ timeout: 30_000 });
  await page.getByLabel('Import stream file (uploaded)').setInputFiles(stream);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const imported = await page.getByText(/^Imported 1 checkpoint: #\d+\.$/).innerText({ timeout: 30_000 });
  const newId = Number(/#(\d+)/.exec(imported)![1]);
  await shot('store');
  await compression.selectOption('none');
  await waitForValue(async () => (await engine<{ compression: string }>('store.config')).compression, 'none');

  // Delete the imported copy; the timeline loses it.
  const { checkpoints: after } = await engine<{ checkpoints: Ckpt[] }>('checkpoints.list');
  await page.getByLabel('Process').selectOption(String(after.find((x) => x.id === newId)!.targetId));
  await page.locator(`[data-testid="timeline-row"][data-id="${newId}"]`).click();
  await page.getByRole('button', { name: 'Delete…' }).click();
  await shot('delete');
  // The stream carried the pin of #first; the dialog says so and unpins before deleting.
  await page.getByRole('button', { name: 'Unpin and delete', exact: true }).click();
  await page.locator(`[data-testid="timeline-row"][data-id="${newId}"]`).waitFor({ state: 'detached', timeout: 10_000 });
  const { checkpoints: final } = await engine<{ checkpoints: Ckpt[] }>('checkpoints.list');
  assert.equal(final.some((x) => x.id === newId), false);
  assert.deepEqual(pageErrors, []);
});

step('Schedules: add one from the Processes page; its runs are pushed to the list and the history', async () => {
  await page.goto(url.replace(/\?token=.*$/, '#/processes'));
  await page.getByLabel('Search').fill(String(state.pid));
  await page.getByRole('link', { name: `Add a schedule for PID ${state.pid}` }).click();
  await page.getByRole('heading', { level: 1, name: 'Schedules' }).waitFor();
  assert.equal(await page.getByLabel('PID', { exact: true }).inputValue(), String(state.pid));
  await page.getByLabel(/^Every/).fill('1');
  await page.getByLabel(/^Keep the last/).fill('3');
  await page.getByLabel('Label (optional)').fill('every second');
  await shot('schedule-new');
  await page.getByRole('button', { name: 'Create' }).click();
  const row = page.getByTestId('schedule-row').first();
  await row.waitFor();
  assert.match(await page.getByTestId('scheduler').innerText(), /Schedules run in the Stasis app \(PID \d+\)/);
  // No reload from here on: the list changes when the engine pushes schedule.run.done.
  await row.getByTestId('last-result').filter({ hasText: /^ok at / }).waitFor({ timeout: 20_000 });
  await shot('schedules');
  await row.getByRole('button', { name: 'History' }).click();
  await page.getByTestId('run-row').first().waitFor();
  assert.match(await page.getByTestId('run-row').first().innerText(), /ok \((full|incremental)\)\s+#\d+/);
  await shot('schedule-history');
  await page.keyboard.press('Escape');
  await row.getByRole('button', { name: 'Pause' }).click();
  await row.getByRole('button', { name: 'Resume' }).waitFor();
  assert.match(await row.innerText(), /paused/);
  assert.deepEqual(pageErrors, []);
});

step('Dark theme, and a checkpoint taken elsewhere is pushed into the open timeline', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(url.replace(/\?token=.*$/, '#/checkpoints'));
  await page.getByTestId('timeline-row').first().waitFor();
  // A checkpoint taken outside this page appears without a reload: capture.done is pushed over the WebSocket.
  const c = await engine<{ id: number }>('capture.checkpoint', { pid: state.pid, label: 'from outside' });
  await page.locator(`[data-testid="timeline-row"][data-id="${c.id}"]`).waitFor({ timeout: 10_000 });
  await shot('checkpoints-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  assert.deepEqual(pageErrors, []);
});

step('Restore wizard: "stop the original" takes a safety checkpoint of it, stops it, then restores', async () => {
  await page.goto(url.replace(/\?token=.*$/, '#/checkpoints'));
  const { checkpoints } = await engine<{ checkpoints: Ckpt[] }>('checkpoints.list');
  await page.getByLabel('Process').selectOption(String(checkpoints.find((x) => x.id === state.second)!.targetId));
  await page.locator(`[data-testid="timeline-row"][data-id="${state.second}"]`).click();
  await page.getByRole('button', { name: 'Restore…' }).click();
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  await page.getByTestId('preflight-summary').filter({ hasText: /^All \d+ checks pass\.$/ }).waitFor({ timeout: 20_000 });
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('group', { name: `The original process (PID ${state.pid}) is still running` }).waitFor();
  await page.getByLabel('Stop it (a safety checkpoint of it is taken first)').check();
  await page.getByRole('button', { name: 'Restore', exact: true }).click();
  const newPid = Number(await page.getByTestId('restored-pid').innerText({ timeout: 30_000 }));
  pids.push(newPid);
  const result = await page.getByRole('dialog').innerText();
  const safety = Number(/Safety checkpoint\s+#(\d+)/.exec(result)?.[1]);
  assert.ok(safety > state.second, `safety checkpoint in the result: ${result}`);
  // Stopped: either the PID is gone, or (the restore took the freed PID back) it now belongs to a
  // process with another start time.
  const originalStart = (await engine<{ targets: { id: number; pid: number; startTime: string }[]; checkpoints: Ckpt[] }>('checkpoints.list'))
    .targets.find((t) => t.id === checkpoints.find((x) => x.id === state.second)!.targetId)!.startTime;
  const startTime = (pid: number): string | null => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[19]; } catch { return null; } };
  await until('the original to be stopped', () => !alive(state.pid) || startTime(state.pid) !== originalStart);
  if (newPid === state.pid) assert.match(result, /the same PID as the original/);
  assert.ok(alive(newPid), 'the restored process runs');
  const after = await engine<{ checkpoints: Ckpt[] }>('checkpoints.list');
  assert.match(after.checkpoints.find((x) => x.id === safety)!.label ?? '', new RegExp(`safety before restoring #${state.second}`));
  assert.deepEqual(pageErrors, []);
});

step('Cancel: a long store operation shows "Cancel operation" while it runs, and cancelling ends it in the UI', async () => {
  await page.goto(url.replace(/\?token=.*$/, '#/status'));
  await page.reload(); // a fresh page: no dialog of the previous step left open
  await page.goto(url.replace(/\?token=.*$/, '#/checkpoints'));
  await page.getByRole('button', { name: 'Store…', exact: true }).click();
  // Hold the verify request in the browser so the operation is still running when Cancel is clicked,
  // however fast the engine is; the fetch's abort is what the Cancel button must cause.
  let held: { abort(): Promise<void> } | null = null;
  let aborted = false;
  await page.route('**/api/call/store.verify', (route) => { held = route; });
  page.on('requestfailed', (r) => { if (r.url().endsWith('/api/call/store.verify')) aborted = true; });
  await page.getByRole('button', { name: 'Verify' }).click();
  await until('the verify request to be in flight', () => held !== null);
  const cancel = page.getByRole('button', { name: 'Cancel operation' });
  await cancel.waitFor();
  assert.equal(await page.getByRole('button', { name: 'Verify' }).isDisabled(), true);
  await cancel.click();
  await page.getByTestId('cancelled').waitFor();
  await until('the request to be aborted', () => aborted);
  assert.equal(await page.getByRole('button', { name: 'Verify' }).isDisabled(), false);
  assert.equal(await cancel.count(), 0);
  await page.unroute('**/api/call/store.verify');
  // A cancelled call is not an error: the page shows no error note and logged no error.
  assert.equal(await page.getByRole('alert').count(), 0);
  assert.deepEqual(pageErrors, []);
});

step('Import by upload: a determinate progress bar while the file goes up, and Cancel stops the upload', async () => {
  const big = join(tmp, 'big.stasis');
  writeFileSync(big, Buffer.alloc(8 * 1024 * 1024, 7));
  await page.getByLabel('Import stream file (uploaded)').setInputFiles(big);
  // Slow the upload down (about 4 s) so its progress can be seen and cancelled midway.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * 1024 * 1024 });
  try {
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const bar = page.getByRole('progressbar', { name: /^Uploading: \d+%$/ });
    await bar.waitFor();
    const seen = await until('the upload to be part-way', async () => {
      const v = Number(await bar.getAttribute('value'));
      return v > 0 && v < 1 ? v : null;
    });
    assert.ok(seen > 0 && seen < 1);
    await shot('import-upload');
    await page.getByRole('button', { name: 'Cancel operation' }).click();
    await page.getByTestId('cancelled').waitFor();
    assert.equal(await bar.count(), 0);
  } finally {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await cdp.detach();
  }
  // The server drops a cancelled upload: no temp file is left in the store.
  const transfer = join(tmp, 'store', 'transfer');
  await until('the partial upload to be removed', () => !existsSync(transfer) || readdirSync(transfer).every((n) => !n.startsWith('upload-')));
  assert.deepEqual(pageErrors, []);
});
