// Moving work between two Stasis instances from the UI, end to end in Debian Chromium: two browser
// mode servers with their own stores (A: the source, B: the receiver; B's page is opened as
// localhost so the two session cookies do not collide). B's Receive page listens on 127.0.0.1 and
// shows its address and pairing token; A's page sends a checkpoint of a real counter process
// (test/fixtures/migrate-counter.c) with that token, and B lists it as arrived. Then B listens
// again; A's Migrate… first checks the destination, whose pre-flight shows while the counter
// still runs here (Not now ends that as a dry run; B keeps its token), then checks again and
// migrates it from that session's first round: the counter goes on counting on B as a new PID with
// no step lost or repeated and its memory intact, and the process here is gone. A process tree
// (test/fixtures/tree-counter.c) fails the check on its PIDs taken here, passes with "New PIDs
// there", and moves whole: the result lists its three processes with their PIDs on B.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, stopServer, waitForUrl } from './browser-helpers';
import { buildFixture } from '../helpers/fixtures';
import { procState, spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { fileLines, isAlive, killQuietly, waitFor } from '../restore/helpers';
import { openStore } from '../../electron/engine/store';
import { assertConsecutive, countsGrow } from '../migrate/counter-checks';

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
let counter: DetachedProcess;
let out: string;
let moved = 0;
const pageErrors: string[] = [];

async function shot(p: Page, name: string): Promise<void> {
  mkdirSync(results, { recursive: true });
  await p.screenshot({ path: join(results, `ui-${name}.png`) });
  if (updateDocs) copyFileSync(join(results, `ui-${name}.png`), join(root, 'docs', 'screenshots', `${name}.png`));
}

function startServer(store: string): ChildProcess {
  const env = { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', STASIS_SCHEDULER: '0' };
  return spawn(process.execPath, ['scripts/start.mjs', '--browser', '--no-open', '--store', store], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The counts the counter wrote, checked to be 1, 2, 3, ... with nothing lost or repeated. */
before(async () => {
  assert.equal(spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' }).status, 0, 'build failed');
  tmp = mkdtempSync(join(tmpdir(), 'stasis-e2e-migrate-'));
  out = join(tmp, 'out.txt');
  counter = spawnDetached([buildFixture('migrate-counter'), out, '16', '200'], { cwd: tmp });
  serverA = startServer(join(tmp, 'store-a'));
  serverB = startServer(join(tmp, 'store-b'));
  const [urlA, urlB] = await Promise.all([waitForUrl(serverA, 60_000), waitForUrl(serverB, 60_000)]);
  context = await launchChromium(join(tmp, 'profile'), { width: 1200, height: 820 });
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
  await waitFor('the counter to start', () => fileLines(out).length > 20, 30_000);
});

after(async () => {
  counter?.kill();
  if (moved) killQuietly(moved);
  await context?.close();
  await Promise.all([stopServer(serverA), stopServer(serverB)]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A's Processes page filtered to the counter; Refresh when its row is not there (a list read while other processes came and went). */
async function counterRowOnA(pid = counter.pid): Promise<void> {
  await a.goto(`${baseA}#/status`);
  await a.goto(`${baseA}#/processes`);
  await a.getByLabel('Search').fill(String(pid));
  for (let attempt = 1; ; attempt++) {
    try {
      await a.locator(`tr[data-pid="${pid}"]`).waitFor({ timeout: 10_000 });
      return;
    } catch (e) {
      if (attempt === 3) { mkdirSync(results, { recursive: true }); await a.screenshot({ path: join(results, 'ui-migrate-no-row.png') }); throw e; }
      await a.getByRole('button', { name: 'Refresh' }).click();
    }
  }
}

/** B's Receive page: listen on 127.0.0.1 (any free port); returns the address and token it shows. */
async function listenOnB(): Promise<{ address: string; token: string }> {
  // From another page, so the Receive page starts afresh (with its default address).
  await b.goto(`${baseB}#/status`);
  await b.goto(`${baseB}#/receive`);
  const field = b.getByLabel(/^Listen on/);
  assert.equal(await field.inputValue(), '0.0.0.0:7411', 'the default address');
  // Bad input: the contract's error, and nothing listens.
  await field.fill('127.0.0.1:99999');
  await b.getByRole('button', { name: 'Start listening' }).click();
  assert.match(await b.getByRole('alert').innerText(), /INVALID_INPUT.*address: the port must be 0 \(any free port\) to 65535/s);
  await field.fill('127.0.0.1:0');
  await b.getByRole('button', { name: 'Start listening' }).click();
  const address = (await b.getByTestId('receive-address').innerText()).trim();
  const token = await b.getByTestId('receive-token').inputValue();
  assert.match(address, /^127\.0\.0\.1:\d+$/);
  assert.match(token, /^stasis1-[A-Za-z0-9_-]{43}$/);
  return { address, token };
}

test('Send to machine…: a checkpoint taken on A arrives in B\'s store through B\'s Receive page and its token', async () => {
  const l = await listenOnB();
  await shot(b, 'receive');
  // A checkpoint of the counter on A, from the Processes page.
  await counterRowOnA();
  await a.getByRole('button', { name: new RegExp(`Checkpoint .*PID ${counter.pid}\\) now`) }).click();
  await a.getByRole('button', { name: 'Checkpoint now', exact: true }).click();
  const id = Number((await a.getByTestId('checkpoint-id').innerText({ timeout: 60_000 })).replace('#', ''));
  await a.getByRole('button', { name: 'Close', exact: true }).last().click();

  await a.goto(`${baseA}#/checkpoints`);
  await a.getByRole('button', { name: 'Send to machine…' }).click();
  const dialog = a.getByRole('dialog', { name: `Send checkpoint #${id} to another machine` });
  await dialog.getByLabel('Receiver (HOST:PORT)').fill(l.address);
  // A token cut short: the contract says what is wrong, nothing is sent.
  await dialog.getByLabel('Pairing token').fill(l.token.slice(0, 20));
  await dialog.getByRole('button', { name: 'Send', exact: true }).click();
  assert.match(await dialog.getByRole('alert').innerText(), /token: paste the whole pairing token/);
  await dialog.getByLabel('Pairing token').fill(l.token);
  await shot(a, 'send');
  await dialog.getByRole('button', { name: 'Send', exact: true }).click();
  const result = dialog.getByTestId('send-result');
  await result.waitFor({ timeout: 60_000 });
  const received = (await result.getAttribute('data-received'))!.split(',').map(Number);
  assert.equal(received.length, 1);
  assert.match(await result.innerText(), new RegExp(`Sent #${id} .*imported it as #${received[0]}`));

  // B shows what arrived; its store has it.
  const arrival = b.getByTestId('arrival').first();
  await arrival.waitFor();
  assert.equal(await arrival.getAttribute('data-kind'), 'checkpoints');
  assert.equal(await arrival.getAttribute('data-ids'), String(received[0]));
  assert.equal(await b.getByTestId('receive-token').count(), 0, 'the used token is no longer shown');
  await b.goto(`${baseB}#/checkpoints`);
  await b.getByRole('heading', { name: new RegExp(`^Checkpoint #${received[0]}`) }).waitFor();
});

test('Migrate…: the check shows the destination\'s pre-flight while the process runs on here; Not now ends it as a dry run; checked again, Migrate now goes on from that first round, and it counts on at B', async () => {
  const l = await listenOnB();
  await counterRowOnA();
  await a.getByRole('button', { name: `Migrate migrate-counter (PID ${counter.pid}) to another machine` }).click();
  const dialog = a.getByRole('dialog', { name: `Migrate migrate-counter (PID ${counter.pid}) to another machine` });
  await dialog.getByLabel('Receiver (HOST:PORT)').fill(l.address);
  await dialog.getByLabel('Pairing token').fill(l.token);
  assert.equal(await dialog.getByRole('button', { name: 'Migrate now' }).isDisabled(), true, 'no migration before the check');
  await dialog.getByRole('button', { name: 'Check destination' }).click();
  const summary = dialog.getByTestId('migrate-preflight-summary');
  await summary.waitFor({ timeout: 60_000 });
  await dialog.getByTestId('migrate-waiting').waitFor();
  // The pre-flight is there and the process was never stopped: it runs (not 'T') and counts on.
  assert.equal(counter.alive(), true);
  assert.notEqual(procState(counter.pid), 'T');
  await countsGrow(out);
  assert.equal(await summary.getAttribute('data-ok'), 'true', await summary.innerText());
  const items = dialog.getByTestId('preflight-item');
  assert.ok(await items.count() > 3);
  for (let i = 0; i < await items.count(); i++) assert.equal(await items.nth(i).getAttribute('data-ok'), 'true', await items.nth(i).innerText());
  assert.match(await dialog.innerText(), /Working directory exists/);
  await shot(a, 'migrate-preflight');

  // Not now: the session ends as a dry run; B keeps listening with the same token.
  await dialog.getByRole('button', { name: 'Not now' }).click();
  await dialog.getByTestId('migrate-not-now').waitFor();
  assert.equal(await dialog.getByRole('button', { name: 'Migrate now' }).isDisabled(), true);
  const dry = b.getByTestId('arrival').first();
  await b.waitForFunction(`document.querySelector('[data-testid="arrival"]')?.getAttribute('data-kind') === 'dry-run'`);
  assert.equal(await dry.getAttribute('data-kind'), 'dry-run');
  assert.equal(await b.getByTestId('receive-token').inputValue(), l.token);
  assert.equal(counter.alive(), true);

  // Checked again: this time the session goes on.
  await dialog.getByRole('button', { name: 'Check destination' }).click();
  await dialog.getByTestId('migrate-waiting').waitFor({ timeout: 60_000 });
  assert.equal(await summary.getAttribute('data-ok'), 'true');

  // Every rounds line the dialog shows while it runs, recorded in the page (rounds are quick).
  await a.evaluate(`(() => {
    const seen = [];
    window.seenRounds = seen;
    new MutationObserver(() => {
      const el = document.querySelector('[data-testid="migrate-phases"]');
      if (el && seen[seen.length - 1] !== el.textContent) seen.push(el.textContent);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  })()`);
  await dialog.getByRole('button', { name: 'Migrate now' }).click();
  const result = a.getByTestId('migrate-result');
  await result.waitFor({ timeout: 120_000 });
  moved = Number(await result.getAttribute('data-destination-pid'));
  assert.ok(moved > 0 && moved !== counter.pid);
  assert.match(await a.getByTestId('downtime').innerText(), /ms/);
  const rounds = await a.getByTestId('rounds').locator('tbody tr').allInnerTexts();
  assert.match(rounds[0]!, /^1\s+full/);
  assert.match(rounds.at(-1)!, /final/);
  // One full round per check and none more: Migrate now went on from the second check's round 1.
  const st = openStore(join(tmp, 'store-a'));
  try {
    const fulls = st.list().filter((c) => c.label === 'migration: full');
    assert.equal(fulls.length, 2, JSON.stringify(st.list().map((c) => [c.id, c.label])));
  } finally {
    st.close();
  }
  const seen = (await a.evaluate('window.seenRounds')) as string[];
  assert.match(seen[0] ?? '', /^Rounds: round 1 \(full\)$/, JSON.stringify(seen));
  assert.ok(seen.some((x) => /round \d+ \(final, process frozen\)$/.test(x)), JSON.stringify(seen));
  await shot(a, 'migrate-result');
  await a.getByRole('button', { name: 'Close', exact: true }).last().click();

  // Here it is gone; there it runs and counts on, no step lost or repeated, its memory intact.
  await counter.waitExit(10_000);
  assert.ok(isAlive(moved));
  await countsGrow(out);
  process.kill(moved, 'SIGUSR1');
  await waitFor('the memory check', () => fileLines(out).some((x) => x.startsWith(`check pid=${moved} `)), 10_000);
  assert.match(fileLines(out).find((x) => x.startsWith(`check pid=${moved} `))!, /mem=ok/);
  assert.ok(assertConsecutive(out) > 40);

  const arrival = b.getByTestId('arrival').first();
  // Page code as a string: this file is type-checked without the DOM library.
  await b.waitForFunction(`document.querySelector('[data-testid="arrival"]')?.getAttribute('data-pid') === '${moved}'`);
  assert.equal(await arrival.getAttribute('data-kind'), 'migration');
  await shot(b, 'receive-arrived');
  // The browser logs the 400 replies of the three bad inputs (two listen addresses, one short token); nothing else.
  assert.deepEqual(pageErrors, Array(3).fill('console: Failed to load resource: the server responded with a status of 400 (Bad Request)'));
});

test('Migrate…: a dry run the destination refuses shows which check fails and why; Migrate now stays disabled and the process runs on', async () => {
  const gone = join(tmp, 'cwd-gone');
  mkdirSync(gone);
  const out2 = join(tmp, 'out-refused.txt');
  const other = spawnDetached([buildFixture('migrate-counter'), out2, '4', '200'], { cwd: gone });
  try {
    await waitFor('the second counter to start', () => fileLines(out2).length > 20, 30_000);
    // Its working directory vanishes while it runs: the destination cannot give it back.
    rmSync(gone, { recursive: true });
    const l = await listenOnB();
    await counterRowOnA(other.pid);
    await a.getByRole('button', { name: `Migrate migrate-counter (PID ${other.pid}) to another machine` }).click();
    const dialog = a.getByRole('dialog', { name: `Migrate migrate-counter (PID ${other.pid}) to another machine` });
    await dialog.getByLabel('Receiver (HOST:PORT)').fill(l.address);
    await dialog.getByLabel('Pairing token').fill(l.token);
    await dialog.getByRole('button', { name: 'Check destination' }).click();
    const summary = dialog.getByTestId('migrate-preflight-summary');
    await summary.waitFor({ timeout: 60_000 });
    assert.equal(await summary.getAttribute('data-ok'), 'false');
    assert.match(await summary.innerText(), /cannot restore it: 1 of \d+ checks fail\. Nothing was stopped/);
    const failing = dialog.locator('[data-testid="preflight-item"][data-ok="false"]');
    assert.equal(await failing.count(), 1);
    assert.match(await failing.innerText(), /Working directory exists.*had already been deleted when the checkpoint was taken.*Fix: This checkpoint cannot come back where it was/s);
    assert.equal(await dialog.getByRole('button', { name: 'Migrate now' }).isDisabled(), true);
    assert.equal(other.alive(), true);
    const n = fileLines(out2).length;
    await waitFor('it to go on counting', () => fileLines(out2).length > n + 5, 10_000);
    await shot(a, 'migrate-refused');
    // B keeps listening with the same token after a refused dry run.
    await b.getByTestId('arrival').first().waitFor();
    assert.equal(await b.getByTestId('arrival').first().getAttribute('data-kind'), 'dry-run');
    assert.equal(await b.getByTestId('receive-token').inputValue(), l.token);
    await b.getByRole('button', { name: 'Stop listening' }).click();
    await b.getByRole('button', { name: 'Start listening' }).waitFor();
  } finally {
    other.kill();
  }
});

test('Migrate… of a process tree: the check names the PIDs taken there; with "New PIDs there" it passes, and Migrate now moves all three processes, listed in the result', async () => {
  const out3 = join(tmp, 'out-tree.txt');
  const tree = spawnDetached([buildFixture('tree-counter'), out3, '4', '100'], { cwd: tmp });
  const kids = (): number[] => {
    try { return readFileSync(`/proc/${tree.pid}/task/${tree.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
  };
  const there: number[] = [];
  let here: number[] = [];
  try {
    await waitFor('the tree to count', () => fileLines(out3).length > 20, 30_000);
    here = kids();
    // The refused test leaves its dialog open: start from a fresh page.
    await a.reload();
    const l = await listenOnB();
    await counterRowOnA(tree.pid);
    await a.getByRole('button', { name: `Migrate tree-counter (PID ${tree.pid}) to another machine` }).click();
    const dialog = a.getByRole('dialog', { name: `Migrate tree-counter (PID ${tree.pid}) to another machine` });
    await dialog.getByLabel('Receiver (HOST:PORT)').fill(l.address);
    await dialog.getByLabel('Pairing token').fill(l.token);
    await dialog.getByRole('button', { name: 'Check destination' }).click();
    const summary = dialog.getByTestId('migrate-preflight-summary');
    await summary.waitFor({ timeout: 60_000 });
    // Both stores are on this machine: the tree's own PIDs are taken there.
    assert.equal(await summary.getAttribute('data-ok'), 'false', await summary.innerText());
    assert.match(await dialog.locator('[data-testid="preflight-item"][data-ok="false"]').first().innerText(), new RegExp(`PIDs of the tree.*PID ${tree.pid} is taken`, 's'));
    assert.equal(await dialog.getByRole('button', { name: 'Migrate now' }).isDisabled(), true);
    await dialog.getByLabel(/New PIDs there/).check();
    await dialog.getByRole('button', { name: 'Check destination' }).click();
    await dialog.locator('[data-testid="migrate-preflight-summary"][data-ok="true"]').waitFor({ timeout: 60_000 });
    await dialog.getByTestId('migrate-waiting').waitFor();
    assert.match(await dialog.innerText(), /New PIDs were asked for/);
    // The tree runs on while the dialog waits for the answer.
    assert.ok(isAlive(tree.pid) && here.every((p) => isAlive(p)));
    await dialog.getByRole('button', { name: 'Migrate now' }).click();
    const result = a.getByTestId('migrate-result');
    await result.waitFor({ timeout: 120_000 });
    assert.match(await result.innerText(), /The tree of 3 processes runs on the destination, its root as PID \d+/);
    const rows = await a.getByTestId('migrate-members').locator('tbody tr').allInnerTexts();
    assert.equal(rows.length, 3);
    for (const [i, r] of rows.entries()) {
      const m = /^(\d+)\s+tree-counter\s+(\d+)$/.exec(r.trim());
      assert.ok(m, r);
      assert.equal(Number(m[1]), [tree.pid, ...here][i]);
      there.push(Number(m[2]));
    }
    await shot(a, 'migrate-tree-result');
    await a.getByRole('button', { name: 'Close', exact: true }).last().click();
    await tree.waitExit(10_000);
    for (const p of here) await waitFor(`source child ${p} to be gone`, () => !isAlive(p), 10_000);
    assert.ok(there.every((p) => isAlive(p)));
    const n = fileLines(out3).length;
    await waitFor('the tree to count on there', () => fileLines(out3).length > n + 20, 15_000);
  } finally {
    tree.kill();
    for (const p of [...here, ...there.reverse()]) killQuietly(p);
  }
});
