/**
 * Starts the engine worker thread and talks to it: call(name, input) -> Reply, events to listeners,
 * cancellation. Used by Electron main and the browser-mode server (the UI side); the CLI calls
 * handlers in-process instead. If the worker dies, calls in flight fail with INTERNAL, an
 * 'engine.crashed' event is sent, and the next call starts a fresh worker.
 *
 * Works from the TypeScript sources (worker.ts loaded through tsx) and from the esbuild bundles,
 * where every bundle sits flat in dist/ next to engine-worker.js.
 */
import { Worker } from 'node:worker_threads';
import type { Reply } from '../../../shared/contract';
import { StasisError } from '../../../shared/errors';
import type { FromWorker, ToWorker, WorkerInit } from './protocol';
import { ensureStoreDir } from './store-access';

export type EventListener = (event: string, payload: unknown) => void;

/** A client's call id is echoed to every client: a short plain token, never anything else. */
export function callIdOk(callId: unknown): callId is string {
  return typeof callId === 'string' && /^[\w-]{1,64}$/.test(callId);
}

/** What a transport (IPC, HTTP) needs from the engine. */
export interface EngineCaller {
  /** callId: the client's id for this call, echoed in its 'op.progress' events (checked by callIdOk). */
  call(name: string, input: unknown, signal?: AbortSignal, callId?: string): Promise<Reply<unknown>>;
  onEvent(listener: EventListener): () => void;
}

interface Pending {
  resolve(reply: Reply<unknown>): void;
  cancel: Int32Array;
}

/** The worker to start: the bundle next to this file, or (from sources) a bootstrap that loads tsx first. */
function workerSpec(): { entry: URL | string; eval: boolean } {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) {
    // Packaged app: the worker is unpacked from the asar archive (package.json build.asarUnpack) so
    // that it resolves the unpacked native modules next to it.
    return { entry: new URL(new URL('./engine-worker.js', self).href.replace('/app.asar/', '/app.asar.unpacked/')), eval: false };
  }
  // Module hooks are per thread and Node 20 ignores `--import` in a worker's execArgv, so the
  // worker registers tsx itself before importing the TypeScript entry.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./worker.ts', self).href;
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })` +
    `.catch((e) => { setImmediate(() => { throw e; }); });`;
  return { entry: code, eval: true };
}

export class EngineHost implements EngineCaller {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<EventListener>();
  private closed = false;
  private keepRunning = false;

  constructor(readonly storeDir: string) {
    ensureStoreDir(storeDir);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const spec = workerSpec();
    const w = new Worker(spec.entry, { eval: spec.eval, workerData: { storeDir: this.storeDir } satisfies WorkerInit });
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (err) => this.onExit(`The engine stopped with an error: ${err.message.replace(/\.?$/, '.')}`));
    w.on('exit', (code) => this.onExit(`The engine stopped unexpectedly (exit code ${code}).`));
    this.worker = w;
    return w;
  }

  /**
   * Starts the worker now and restarts it (after a second) whenever it dies: scheduled checkpoints
   * run inside it, so the app and browser mode must not wait for a first UI call to start it.
   */
  keepAlive(): void {
    this.keepRunning = true;
    this.start();
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'reply') {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m.reply);
    } else if (m.type === 'event') {
      this.emit(m.event, m.payload);
    }
  }

  private onExit(message: string): void {
    if (!this.worker) return;
    this.worker = null;
    const fail = new StasisError('INTERNAL', `${message} The call did not complete; try again.`).toJSON();
    for (const p of this.pending.values()) p.resolve({ ok: false, error: fail });
    this.pending.clear();
    if (!this.closed) this.emit('engine.crashed', { message });
    if (!this.closed && this.keepRunning) setTimeout(() => { if (!this.closed && this.keepRunning) this.start(); }, 1000).unref();
  }

  private emit(event: string, payload: unknown): void {
    for (const l of this.listeners) {
      try { l(event, payload); } catch { /* a broken listener must not stop the others */ }
    }
  }

  call(name: string, input: unknown, signal?: AbortSignal, callId?: string): Promise<Reply<unknown>> {
    if (this.closed) return Promise.resolve({ ok: false, error: new StasisError('CANCELLED', 'The engine is shutting down.').toJSON() });
    const w = this.start();
    const id = this.nextId++;
    const cancelBuf = new SharedArrayBuffer(4);
    const cancel = new Int32Array(cancelBuf);
    return new Promise<Reply<unknown>>((resolve) => {
      this.pending.set(id, { resolve, cancel });
      const onAbort = (): void => this.cancel(id);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      w.postMessage({ type: 'call', id, name, input, cancel: cancelBuf, ...(callIdOk(callId) ? { callId } : {}) } satisfies ToWorker);
    });
  }

  /** Asks the worker to stop call #id; the call still replies (CANCELLED, or its result if it finished first). */
  private cancel(id: number): void {
    const p = this.pending.get(id);
    if (!p || !this.worker) return;
    Atomics.store(p.cancel, 0, 1);
    this.worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
  }

  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Lets calls in flight finish for up to graceMs, then terminates the worker. */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const w = this.worker;
    if (!w) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    w.postMessage({ type: 'shutdown' } satisfies ToWorker);
    const timer = setTimeout(() => void w.terminate(), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
