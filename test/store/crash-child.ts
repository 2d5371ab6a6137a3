/**
 * Child process for the crash tests: opens a store and loops over one kind of write (commit, gc,
 * flatten or import) until the parent kills it with SIGKILL ('deferred': one commit with its
 * durability deferred, then it waits to be killed). Prints "ready" once the store is open.
 */
import { openStore } from '../../electron/engine/store';
import { mapping, randomPage, rng, writeComplete, type View } from './model';

const [mode, dir, stream, seedArg] = process.argv.slice(2);
const r = rng(Number(seedArg));
const store = openStore(dir, { lockTimeoutMs: 60_000 });
const tg = store.upsertTarget({ pid: 9, startTime: mode === 'commit5' ? String(process.pid) : '9', exe: '/child', cmdline: [] });
process.stdout.write('ready\n');

function someView(n: number): View {
  const v: View = new Map();
  for (let i = 0; i < n; i++) v.set(0x9000 + i, r() < 0.2 ? Buffer.alloc(4096) : randomPage(r));
  return v;
}

for (let i = 0; ; i++) {
  if (mode === 'commit5') {
    // Several of these run at once against one store: the writer lock serialises them.
    if (i === 5) { store.close(); process.exit(0); }
    const latest = store.latest(tg.id);
    writeComplete(store, tg.id, latest ? latest.id : null, someView(64), [mapping(0x9000, 64)]);
    if (i % 2 === 1) store.gc();
  } else if (mode === 'commit') {
    const latest = store.latest(tg.id);
    writeComplete(store, tg.id, latest && r() < 0.7 ? latest.id : null, someView(32 + Math.floor(r() * 200)), [mapping(0x9000, 240)]);
  } else if (mode === 'gc') {
    if (i === 0) store.remove([1]); // the base root: its pages move into its child, then gc compacts
    const id = writeComplete(store, tg.id, null, someView(64), [mapping(0x9000, 64)]);
    store.remove([id]);
    store.gc();
  } else if (mode === 'flatten') {
    // Flatten the chain the parent made (its records move to the new copies), grow it, compact.
    const a = store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] });
    const tip = store.latest(a.id)!.id;
    if (i % 3 === 0) store.flatten(tip);
    else if (i % 3 === 1) writeComplete(store, a.id, tip, new Map([...someView(160)].map(([k, b]) => [k - 0x9000 + 0x100, b])), [mapping(0x100, 160)]);
    else store.gc();
  } else if (mode === 'deferred') {
    // A migration's last round: committed with its durability deferred, then the process dies before settle().
    const latest = store.latest(tg.id);
    const id = writeComplete(store, tg.id, latest ? latest.id : null, someView(64), [mapping(0x9000, 64)], () => store.deferDurability());
    process.stdout.write(`committed ${id}\n`);
    setInterval(() => undefined, 1000);
    break;
  } else if (mode === 'import') {
    store.importStream(stream);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}
