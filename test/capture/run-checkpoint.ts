/**
 * Runs one checkpoint in a separate process, for tests that need a different user or an engine
 * that dies mid-capture. usage: node --import tsx run-checkpoint.ts STORE PID [--snapshot HOW]
 * [--hang-at PHASE MARKERFILE]. Prints the result (or {"error": {code, message}}) as JSON.
 */
import { writeFileSync } from 'node:fs';
import { openStore } from '../../electron/engine/store';
import { checkpoint, type CapturePhase, type CheckpointOptions } from '../../electron/engine/capture';
import { toErrorData } from '../../shared/errors';

const [storeDir, pidArg, ...rest] = process.argv.slice(2);
const hangIdx = rest.indexOf('--hang-at');
const hangPhase = hangIdx >= 0 ? (rest[hangIdx + 1] as CapturePhase) : null;
const marker = hangIdx >= 0 ? rest[hangIdx + 2]! : '';
let store: ReturnType<typeof openStore> | null = null;
try {
  store = openStore(storeDir!);
  const r = checkpoint(store, Number(pidArg), {
    ...(rest.includes('--snapshot') ? { snapshot: rest[rest.indexOf('--snapshot') + 1] as CheckpointOptions['snapshot'] } : {}),
    onPhase: (phase) => {
      if (phase !== hangPhase) return;
      writeFileSync(marker, String(process.pid));
      // Block like a long capture would, without yielding, until the test kills us.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
    },
  });
  process.stdout.write(JSON.stringify(r));
} catch (e) {
  process.stdout.write(JSON.stringify({ error: toErrorData(e) }));
} finally {
  store?.close();
}
