// Opens (creates) the store at argv[2] when the clock reaches argv[3] (ms since the epoch), so
// several of these open one new store at the same instant; prints "ok" or the error.
import { openStore } from '../../electron/engine/store';

const [dir, at] = [process.argv[2]!, Number(process.argv[3])];
const nap = at - 50 - Date.now();
if (nap > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, nap);
while (Date.now() < at) { /* spin the last moment: a timer alone would add its own jitter */ }
try {
  openStore(dir).close();
  process.stdout.write('ok');
} catch (e) {
  process.stdout.write((e as Error).message);
}
