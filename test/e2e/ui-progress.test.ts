// End to end: a checkpoint of a 256 MiB process started from the Processes page shows the engine's
// own, determinate progress (engine -> worker -> server -> WebSocket -> the page's call id -> the
// dialog's <progress>), with Cancel available, and then the saved result. Every value the bar takes
// is recorded in the page by a MutationObserver, so the test reads the sequence instead of racing it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, stopServer, waitForUrl } from './browser-helpers';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { waitForFile } from '../capture/common';

const root = fileURLToPath(new URL('../..', import.meta.url));
let tmp: string;
let server: ChildProcess;
let url: string;
let context: BrowserContext;
let page: Page;
let target: DetachedProcess;

before(async () => {
  // The renderer must be the one in this checkout: build it (fast when nothing changed).
  assert.equal(spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' }).status, 0, 'build failed');
  tmp = mkdtempSync(join(tmpdir(), 'stasis-e2e-progress-'));
  target = spawnDetached([buildFixture('capture-pattern'), join(tmp), '65536']);
  await waitForFile(join(tmp, 'info.txt'), 60_000);
  const env = { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', STASIS_SCHEDULER: '0' };
  server = spawn(process.execPath, ['scripts/start.mjs', '--browser', '--no-open', '--store', join(tmp, 'store')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  url = await waitForUrl(server, 60_000);
  context = await launchChromium(join(tmp, 'profile'), { width: 1100, height: 760 });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  target?.kill();
  await context?.close();
  await stopServer(server);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Seen { value: number; text: string; done: number; total: number }

test('a checkpoint shows determinate engine progress, then the saved checkpoint', async () => {
  await page.goto(url);
  await page.goto(url.replace(/\?token=.*$/, '#/processes'));
  await page.getByLabel('Search').fill(String(target.pid));
  await page.getByRole('button', { name: new RegExp(`PID ${target.pid}\\) now`) }).click();
  // Page code as a string: this file is type-checked without the DOM library.
  await page.evaluate(`(() => {
    const seen = [];
    window.seenProgress = seen;
    const record = () => {
      const wrap = document.querySelector('[data-testid="op-progress"]');
      const bar = wrap && wrap.querySelector('progress');
      if (!bar) return;
      const entry = { value: bar.value, text: bar.getAttribute('aria-valuetext') || '', done: Number(wrap.dataset.done), total: Number(wrap.dataset.total) };
      const last = seen[seen.length - 1];
      if (!last || last.done !== entry.done || last.total !== entry.total) seen.push(entry);
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  })()`);
  await page.getByRole('button', { name: 'Checkpoint now', exact: true }).click();
  // While it runs: the engine's bar, determinate, and Cancel next to it.
  await page.getByRole('progressbar', { name: 'Checkpoint progress' }).waitFor({ timeout: 30_000 });
  assert.ok(await page.getByRole('button', { name: 'Cancel operation' }).isVisible(), 'Cancel stays available while it runs');
  await page.getByTestId('checkpoint-id').waitFor({ timeout: 60_000 });
  const seen = (await page.evaluate('window.seenProgress')) as Seen[];

  assert.ok(seen.length >= 2, `the bar moved only ${seen.length} time(s): ${JSON.stringify(seen)}`);
  for (const s of seen) {
    assert.ok(s.value >= 0 && s.value <= 1, `value ${s.value}`);
    assert.match(s.text, /^Checkpoint: \d+% \([\d,]+ of [\d,]+ pages\)$/);
    assert.ok(s.total >= 65536 * 0.9, `total ${s.total} pages for a 256 MiB region`);
  }
  assert.ok(seen.some((s) => s.value > 0 && s.value < 1), `no value strictly between 0 and 1: ${JSON.stringify(seen)}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.done >= seen[i - 1]!.done, `progress went back: ${JSON.stringify(seen)}`);
  // Done: the result replaces the bar.
  assert.match(await page.getByRole('dialog').innerText(), /Saved checkpoint #\d+/);
  assert.equal(await page.getByTestId('op-progress').count(), 0);
});
