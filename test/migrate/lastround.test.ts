/**
 * The last round's bytes inside the downtime: it travels as stream version 4 (footer over the page
 * hashes) to a destination whose hello says hashChecksum, as version 2 to an older one, and both
 * ends keep it in memory faulted in before the freeze (migrate/warm-buffer.ts). Real processes and
 * stores: the counter moves with no step lost and its memory intact either way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { crossedSession, editHello } from '../helpers/crossed-session';
import { spawnDetached } from '../helpers/spawn';
import { fileLines, killQuietly, waitFor, withStore } from '../restore/helpers';
import { openStore } from '../../electron/engine/store';
import { prepareRestore } from '../../electron/engine/restore';
import { migrate } from '../../electron/engine/migrate/source';
import { assertConsecutive, countsGrow, memCheck } from './counter-checks';

const counter = buildFixture('migrate-counter');

for (const older of [false, true]) {
  const name = older
    ? 'an older destination (no hashChecksum in its hello) gets the last round as stream version 2, as before; the counter moves, no step lost, memory intact'
    : 'the last round travels in memory as stream version 4 to a destination that says hashChecksum; the counter moves, no step lost, memory intact, and both stores keep it';
  test(name, async () => {
    await withStore(async (srcStore, dir) => {
      const out = join(dir, 'out.txt');
      const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
      const dst = openStore(join(dir, 'dst'));
      let moved = 0;
      try {
        await waitFor('the counter to start', () => fileLines(out).length > 20);
        const { rd, wr, served } = crossedSession(dst, {
          beginImport: (total) => dst.beginImport(total),
          prepare: async (id) => prepareRestore(dst, id),
        }, older ? editHello((h) => { const { hashChecksum: _drop, ...rest } = h; return rest; }) : undefined);
        // The stream version of the round sent in memory: the header of its first data frame.
        const versions: number[] = [];
        let inMemory = false;
        const send = wr.send.bind(wr);
        wr.send = (m) => { if (m.t === 'stream') inMemory = m.restore === true; return send(m); };
        const data = wr.data.bind(wr);
        wr.data = (chunk) => { if (inMemory) { versions.push(chunk.readUInt32LE(8)); inMemory = false; } return data(chunk); };
        const m = await migrate(srcStore, t.pid, rd, wr, { smallRound: 0, maxRounds: 3 });
        moved = m.destination!.pid;
        assert.ok(m.destination!.prepared, 'the last round was absorbed by the prepared process');
        assert.deepEqual(versions, [older ? 2 : 4], 'one last round in memory, of the expected stream version');
        const res = await served;
        assert.ok(res.restored);
        await countsGrow(out);
        assert.match(await memCheck(moved, out), /mem=ok/);
        assertConsecutive(out, 20);
        // Both stores hold the last round, and verify.
        await waitFor('the destination to store the last round', () => dst.list().some((c) => c.label === 'migration: final'), 10_000);
        assert.ok(srcStore.list().some((c) => c.label === 'migration: final'));
        assert.deepEqual(dst.verify().problems, []);
        assert.deepEqual(srcStore.verify().problems, []);
      } finally {
        t.kill();
        if (moved) killQuietly(moved);
        dst.close();
      }
    });
  });
}
