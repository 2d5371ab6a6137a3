// Processes show user names, not bare uids: processes.list (through the engine worker, as the UI
// calls it) carries `user` from /etc/passwd; the parser keeps the first entry per uid and skips junk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineHost } from '../../electron/engine/host/engine-host';
import { parsePasswd } from '../../electron/engine/proc/users';

const dir = mkdtempSync(join(tmpdir(), 'stasis-users-'));
process.env.STASIS_SCHEDULER = '0';
const engine = new EngineHost(join(dir, 'store'));
after(async () => { await engine.close(); rmSync(dir, { recursive: true, force: true }); });

test('parsePasswd: uid -> name, first entry wins, comments and malformed lines skipped', () => {
  const m = parsePasswd('root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\ntoor:x:0:0::/:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nbad:x:abc:1::/:/bin/sh\n:x:5:5::/:\n');
  assert.deepEqual([...m], [[0, 'root'], [1000, 'bob']]);
});

test('processes.list names the user of each process from /etc/passwd', async () => {
  const reply = await engine.call('processes.list', { all: true });
  assert.ok(reply.ok, JSON.stringify(reply));
  const list = (reply.value as { processes: { pid: number; uid: number; user?: string | null }[] }).processes;
  const expected = parsePasswd(readFileSync('/etc/passwd', 'utf8')).get(process.getuid!());
  assert.ok(expected, 'this test runs as a user listed in /etc/passwd');
  const mine = list.filter((p) => p.uid === process.getuid!());
  assert.ok(mine.length > 0);
  for (const p of mine) assert.equal(p.user, expected);
});
