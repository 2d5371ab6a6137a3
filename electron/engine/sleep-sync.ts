const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Blocks the thread without yielding to the event loop: for the short waits of a ptrace
 * conversation (which must not let other work in between), a lock retry or a kernel state that
 * settles within milliseconds.
 */
export function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
