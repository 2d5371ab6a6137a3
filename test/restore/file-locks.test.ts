/**
 * File locks (flock shared and exclusive, POSIX record locks, OFD locks) are held again by the
 * restored process, checked by the fixture from a child with its own open files; and a lock that
 * someone else holds at restore time is refused by the pre-flight (it used to be dropped silently).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { parseLockLine, conflicts } from '../../electron/engine/state/file-lock';
import { runZdtm, startZdtm } from './zdtm';
import { withStore } from './helpers';

const locks = buildFixture('restore-locks');

test('flock, POSIX and OFD locks are held again after a restore', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, locks);
    assert.deepEqual(r.lines, ['done pass']);
    const pf = preflight(store, r.checkpointId);
    assert.match(pf.items.find((i) => i.id === 'file-locks')!.reason, /5 file locks/);
  });
});

test('a lock the original still holds is refused in pre-flight with who holds it, and the restore does not start', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(locks, dir);
    try {
      const c = checkpoint(store, t.pid, {});
      const pf = preflight(store, c.id);
      const it = pf.items.find((i) => i.id === 'file-locks')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, new RegExp(`flock\\(LOCK_EX\\) on ${dir}/flock-ex \\(fd \\d+\\) is held now by process ${t.pid}`));
      assert.match(it.fix!, /End the process holding them/);
      assert.throws(() => restore(store, c.id, { log: join(dir, 'r.log') }), /cannot be restored/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('lock lines: waiters are not locks; flock and record locks never conflict; ranges to EOF overlap what follows', () => {
  assert.equal(parseLockLine('1: -> FLOCK  ADVISORY  WRITE 12 fe:00:5 0 EOF'), null);
  const w = parseLockLine('lock:\t1: POSIX  ADVISORY  WRITE 17109 fe:00:2149982 10 19')!;
  assert.deepEqual({ kind: w.kind, write: w.write, start: w.start, end: w.end, inode: w.inode, major: w.major }, { kind: 'posix', write: true, start: 10n, end: 19n, inode: 2149982, major: 0xfe });
  const eof = parseLockLine('2: OFDLCK ADVISORY  READ -1 fe:00:2149982 100 EOF')!;
  const fl = parseLockLine('3: FLOCK  ADVISORY  WRITE 5 fe:00:2149982 0 EOF')!;
  assert.equal(conflicts(w, fl), false);
  assert.equal(conflicts(w, eof), false, 'bytes 10-19 and 100-EOF do not overlap');
  assert.equal(conflicts(parseLockLine('4: POSIX  ADVISORY  WRITE 7 fe:00:2149982 5000 5001')!, eof), true);
  assert.equal(conflicts(eof, parseLockLine('5: POSIX  ADVISORY  READ 7 fe:00:2149982 0 EOF')!), false, 'two read locks');
});
