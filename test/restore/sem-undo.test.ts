/**
 * SEM_UNDO records of a process checkpointed with --kill: its death gave the semaphores back, so the
 * restored process "held" a semaphore that was free, and its own exit gave nothing back (CRIU 4.1.1
 * the same). Now measured at capture and taken again at restore; refused in pre-flight when
 * someone else took the semaphore meanwhile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight } from '../../electron/engine/restore';
import { syscall, malloc, free, copyToAddr } from '../../electron/engine/native/sys';
import { SYS_SEMCTL, SYS_SEMOP } from '../../electron/engine/state/sysv-sem';
import { fileLines, waitFor, withStore } from './helpers';
import { runZdtm, startZdtm } from './zdtm';

const semundo = buildFixture('restore-semundo');
const IPC_RMID = 0n;

test('semaphores held with SEM_UNDO are held again after a --kill checkpoint, and given back at exit', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, semundo);
    assert.deepEqual(r.lines, ['done pass']);
    assert.deepEqual(store.getState(r.checkpointId).semUndo?.map((u) => [u.num, u.adj]), [[0, 1], [1, -2]]);
    // The restored process's child checks the values once its parent is gone.
    await waitFor('the exit check', () => fileLines(join(dir, 'zdtm.out')).some((l) => l.startsWith('exit')), 10_000);
    assert.ok(fileLines(join(dir, 'zdtm.out')).includes('exit pass'), fileLines(join(dir, 'zdtm.out')).join('\n'));
  });
});

test('a semaphore taken by another process since the checkpoint is refused in pre-flight', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(semundo, dir);
    let semid = -1;
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const u = store.getState(c.id).semUndo!;
      semid = u[0]!.semid;
      // Someone else takes semaphore 0 (the one the process held) now that the kill freed it.
      const op = malloc(6);
      try {
        const b = Buffer.alloc(6);
        b.writeInt16LE(-1, 2);
        copyToAddr(op, b);
        syscall(SYS_SEMOP, [BigInt(semid), op, 1n], 'semop');
      } finally {
        free(op);
      }
      const it = preflight(store, c.id).items.find((i) => i.id === 'sysv-sem')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, new RegExp(`semaphore 0 of set ${semid} is 0 now: the process held 1 of it`));
    } finally {
      t.kill();
      closeTrackers();
      if (semid >= 0) syscall(SYS_SEMCTL, [BigInt(semid), 0n, IPC_RMID, 0n], 'semctl(IPC_RMID)');
    }
  });
});
