// `stasis schedule ...` through the real CLI entry (runCli, in this process for speed): options,
// --json output, readable output, and errors as one stderr line with a non-zero exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../electron/cli/main';
import { scheduleDbFor } from '../../electron/engine/schedule';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';

async function stasis(dir: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const code = await runCli(['node', 'stasis', '--store', dir, ...args]);
    return { code, out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

test('stasis schedule add/edit/ls/pause/resume/run/history/quota/rm', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-sched-cli-'));
  const p = spawnDetached([buildFixture('schedule-target')]);
  try {
    const add = await stasis(dir, '--json', 'schedule', 'add', String(p.pid), '--every', '90s', '--keep', '5', '--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '2', '--keep-hourly', '6', '--quota', '1.5G', '--full-every', '10', '--quiet', '22:30-06:00', '--label', 'nightly');
    assert.equal(add.code, 0, add.err);
    const s = JSON.parse(add.out) as Record<string, unknown>;
    assert.deepEqual(s.timing, { kind: 'interval', everyMs: 90_000 });
    assert.deepEqual(s.retention, { keepLast: 5, hourly: 6, daily: 7, weekly: 4, monthly: 2, quotaBytes: Math.round(1.5 * 1024 ** 3) });
    assert.deepEqual(s.quietHours, { start: '22:30', end: '06:00' });
    assert.equal(s.fullEvery, 10);
    assert.equal(s.label, 'nightly');

    const edit = await stasis(dir, 'schedule', 'edit', '1', '--cron', '*/5 * * * *');
    assert.equal(edit.code, 0, edit.err);
    assert.match(edit.out, /#1 {2}pid \d+ {2}cron "\*\/5 \* \* \* \*", full every 10, quiet 22:30-06:00 {2}\[active\]/);
    assert.match(edit.out, /keep: last 5, 6 hourly, 7 daily, 4 weekly, 2 monthly, quota 1\.5 GiB/, 'retention unchanged when not given');

    const named = await stasis(dir, '--json', 'schedule', 'add', '--name', 'editor', '--manual');
    assert.equal(named.code, 0, named.err);

    const ls = await stasis(dir, 'schedule', 'ls');
    assert.equal(ls.code, 0);
    assert.match(ls.out, /^Scheduler: none running/);
    assert.match(ls.out, /#2 {2}name "editor" {2}manual/);
    const lsJson = JSON.parse((await stasis(dir, '--json', 'schedule', 'ls')).out) as { schedules: unknown[]; scheduler: unknown };
    assert.equal(lsJson.schedules.length, 2);
    assert.equal(lsJson.scheduler, null);

    assert.match((await stasis(dir, 'schedule', 'pause', '1')).out, /\[paused\]/);
    assert.match((await stasis(dir, 'schedule', 'resume', '1')).out, /\[active\]/);
    assert.equal((await stasis(dir, 'schedule', 'run', '2')).code, 0);
    assert.ok(scheduleDbFor(dir).require(2).nextRunAt! <= Date.now(), 'run now makes it due');
    assert.match((await stasis(dir, 'schedule', 'history')).out, /No runs yet/);
    assert.match((await stasis(dir, 'schedule', 'quota', '20G')).out, /Global quota: 20\.0 GiB/);
    assert.match((await stasis(dir, 'schedule', 'quota', 'none')).out, /No global quota/);
    assert.match((await stasis(dir, 'schedule', 'rm', '2')).out, /Removed schedule #2; its checkpoints are kept/);

    for (const [args, message] of [
      [['schedule', 'add', String(p.pid)], /Say when to run/],
      [['schedule', 'add', '--every', '1m'], /Give a PID, --name NAME, or both/],
      [['schedule', 'add', String(p.pid), '--every', '1m', '--cron', '* * * * *'], /only one of --every, --cron and --manual/],
      [['schedule', 'add', String(p.pid), '--every', 'often'], /"often" is not a duration/],
      [['schedule', 'add', String(p.pid), '--every', '1m', '--keep', 'x'], /--keep takes a whole number/],
      [['schedule', 'add', String(p.pid), '--every', '1m', '--quota', 'lots'], /"lots" is not a size/],
      [['schedule', 'rm', '2'], /There is no schedule #2/],
      [['schedule', 'pause', 'abc'], /A schedule id is a number/],
    ] as const) {
      const r = await stasis(dir, ...args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.out}`);
      assert.match(r.err, message);
      assert.equal(r.err.trim().split('\n').length, 1, 'one line on stderr');
    }
  } finally {
    p.kill();
    scheduleDbFor(dir).close();
    rmSync(dir, { recursive: true, force: true });
  }
});
