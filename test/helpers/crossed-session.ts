/**
 * A migration session between a source and a destination in this process: two crossed pipes (the
 * source's writes are the destination's reads and back), the destination served into store `dst`
 * with the real store, pre-flight and restore. Tests give what they change (a prepared restore
 * that fails, negotiation, grouping) and hook the destination's frames (an older hello, a cut link).
 */
import { PassThrough, Transform } from 'node:stream';
import type { Store } from '../../electron/engine/store/api';
import { preflight, restore } from '../../electron/engine/restore';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';
import { serveMigration, type DestinationDeps, type DestinationResult, type PreparedProcess } from '../../electron/engine/migrate/destination';
import type { PreparedRestore } from '../../electron/engine/restore';

export interface CrossedSession {
  /** The source's ends, to hand to migrate(). */
  rd: FrameReader;
  wr: FrameWriter;
  /** The pipe into the destination (a test ends it to cut the link). */
  toDst: Transform;
  served: Promise<DestinationResult>;
}

export function crossedSession(dst: Store, deps: Partial<DestinationDeps> = {}, dstWriter?: (w: FrameWriter) => FrameWriter): CrossedSession {
  // A copy of each write, as a socket or pipe makes: the source refills one buffer for every chunk
  // (FrameWriter.dataReusable) once its write is done, and a PassThrough hands the reader that very
  // memory.
  const toDst = new Transform({ transform(chunk: Buffer, _enc, cb) { cb(null, Buffer.from(chunk)); } });
  const toSrc = new PassThrough();
  const dstReader = new FrameReader(toDst);
  const w = new FrameWriter(toSrc);
  const served = dstReader.magic().then(() => serveMigration(dstReader, dstWriter ? dstWriter(w) : w, {
    spoolDir: dst.dir,
    importFile: async (file) => dst.importStream(file),
    preflight: async (id, how) => preflight(dst, id, how),
    restore: async (id, how) => restore(dst, id, how),
    remove: async (ids) => dst.remove(ids),
    ...deps,
  }));
  return { rd: new FrameReader(toSrc), wr: new FrameWriter(toDst), toDst, served };
}

/** A destination writer whose hello is edited (an older destination that lacks a capability). */
export function editHello(edit: (hello: { t: string } & Record<string, unknown>) => Record<string, unknown>): (w: FrameWriter) => FrameWriter {
  return (w) => {
    const send = w.send.bind(w);
    w.send = (m) => send(m.t === 'hello' ? { ...edit(m), t: 'hello' } : m);
    return w;
  };
}

/**
 * The destination's prepared process p with some of its steps replaced (a failure injected, a step
 * observed); every other step goes to p. A step set to undefined is one the destination goes without
 * (an older build's prepared process had no finishHeld).
 */
export function preparedWith(p: PreparedRestore, over: Partial<Omit<PreparedProcess, 'checkpointId'>>): PreparedProcess {
  return {
    get checkpointId() { return p.checkpointId; },
    absorb: (next) => p.absorb(next),
    absorbDelta: (state, changes) => p.absorbDelta(state, changes),
    finish: () => p.finish(),
    finishHeld: () => p.finishHeld(),
    record: (asId) => p.record(asId),
    abandon: () => p.abandon(),
    ...over,
  };
}
