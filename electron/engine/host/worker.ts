/**
 * The engine worker thread: receives calls, runs them through api/invoke (validation + handlers),
 * posts one Reply per call and pushes events. Runs synchronous engine work (ptrace, SQLite) so the
 * UI thread never does. Must never touch Electron or the DOM; exits only when told to.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { invoke } from '../../api/invoke';
import { closeReceiver } from '../../api/receiver';
import type { FromWorker, ToWorker, WorkerInit } from './protocol';
import { lazyStore } from './store-access';
import { startScheduler } from '../schedule';
import { defaultCapture } from '../schedule/capture-entry';

if (!parentPort) throw new Error('electron/engine/host/worker.ts must run as a worker thread.');
const port = parentPort;
const init = workerData as WorkerInit;
const store = lazyStore(init.storeDir);
const inflight = new Map<number, AbortController>();

const post = (m: FromWorker): void => port.postMessage(m);

// Scheduled checkpoints run here while the app (or browser mode) runs, window open or closed. It acts
// only while it holds the store's scheduler lock; if a `stasis daemon` holds it, it stands by.
// STASIS_SCHEDULER=0 turns it off (e.g. tests of the host that must not take the lock).
function startAppScheduler(): ReturnType<typeof startScheduler> | null {
  if (process.env.STASIS_SCHEDULER === '0') return null;
  try {
    return startScheduler({
      storeDir: init.storeDir,
      kind: 'app',
      store: () => store.store(),
      capture: defaultCapture,
      emit: (event, payload) => post({ type: 'event', event, payload }),
    });
  } catch (err) {
    // No schedules (e.g. a read-only store) must not take the rest of the engine down.
    console.error(`stasis: scheduled checkpoints are off: ${(err as Error).message}`);
    return null;
  }
}
const scheduler = startAppScheduler();

/**
 * A synchronous handler never yields to this thread's event loop, so a 'cancel' message would not
 * be seen until it returns. The host also sets a shared flag; reading `signal.aborted` checks it.
 */
function signalFor(controller: AbortController, flag: Int32Array): AbortSignal {
  const signal = controller.signal;
  const nativeAborted = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!;
  Object.defineProperty(signal, 'aborted', {
    get: () => {
      if (Atomics.load(flag, 0) === 1 && !nativeAborted.call(signal)) controller.abort();
      return nativeAborted.call(signal) as boolean;
    },
  });
  return signal;
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'call': {
      const controller = new AbortController();
      inflight.set(msg.id, controller);
      const signal = signalFor(controller, new Int32Array(msg.cancel));
      void invoke(msg.name, msg.input, {
        storeDir: init.storeDir,
        store: () => store.store(),
        emit: (event, payload) => post({ type: 'event', event, payload }),
        signal,
        runtime: 'worker',
        ...(msg.callId ? { callId: msg.callId } : {}),
      }).then((reply) => {
        inflight.delete(msg.id);
        post({ type: 'reply', id: msg.id, reply });
      });
      break;
    }
    case 'cancel':
      inflight.get(msg.id)?.abort();
      break;
    case 'shutdown':
      // A listening receiver would keep this thread alive past the store it imports into.
      closeReceiver();
      // Let a run in progress finish and release the scheduler lock before the store closes.
      void (scheduler ? scheduler.stop() : Promise.resolve()).finally(() => {
        store.close();
        port.close();
      });
      break;
  }
});

post({ type: 'ready' });
