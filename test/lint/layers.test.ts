// The layer rule is enforced, not remembered: files that break it fail the real ESLint config
// (eslint.config.js, through ESLint's Node API), and the same files without the bad import pass.
// Each probe is a temporary file written into the layer it tests and removed afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const root = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: root });

/** Lints `code` as a real file at rel (unique name per run), returning the rule ids that fired. */
async function lintAs(rel: string, code: string): Promise<string[]> {
  const file = join(root, rel.replace(/(\.tsx?)$/, `.layer-probe-${process.pid}$1`));
  writeFileSync(file, code);
  try {
    const [result] = await eslint.lintFiles([file]);
    return result.messages.map((m) => m.ruleId ?? `fatal: ${m.message}`);
  } finally {
    rmSync(file, { force: true });
  }
}

const cases: [string, string, string][] = [
  ['renderer imports electron/', 'renderer/src/probe.ts', "import { invoke } from '../../electron/api/invoke';\nexport const x = invoke;\n"],
  ['renderer imports Electron', 'renderer/src/probe.ts', "import { ipcRenderer } from 'electron';\nexport const x = ipcRenderer;\n"],
  ['renderer imports a Node built-in', 'renderer/src/probe.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n"],
  ['shared imports electron/', 'shared/probe.ts', "import { handlers } from '../electron/api/handlers';\nexport const x = handlers;\n"],
  ['shared imports renderer/', 'shared/probe.ts', "import { App } from '../renderer/src/App';\nexport const x = App;\n"],
  ['shared imports a Node built-in', 'shared/probe.ts', "import { join } from 'path';\nexport const x = join;\n"],
  ['the engine imports Electron', 'electron/engine/host/probe.ts', "import { app } from 'electron';\nexport const x = app;\n"],
  ['electron/ imports renderer/', 'electron/server/probe.ts', "import { api } from '../../renderer/src/api';\nexport const x = api;\n"],
];

for (const [what, rel, code] of cases) {
  test(`lint fails when ${what}`, async () => {
    assert.deepEqual(await lintAs(rel, code), ['no-restricted-imports']);
  });
}

test('the same layers lint clean with allowed imports', async () => {
  assert.deepEqual(await lintAs('renderer/src/probe.ts', "import { calls } from '../../shared/contract';\nexport const x = calls;\n"), []);
  assert.deepEqual(await lintAs('shared/probe.ts', "import { z } from 'zod';\nexport const x = z;\n"), []);
  assert.deepEqual(await lintAs('electron/main/probe.ts', "import { app } from 'electron';\nexport const x = app;\n"), []);
});
