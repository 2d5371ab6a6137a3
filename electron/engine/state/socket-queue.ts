/**
 * The messages waiting to be read at one end of a UNIX socketpair, as a checkpoint keeps them
 * (FdState.info.socketQueue on the first descriptor of that end, capture/socket-queue.ts): each
 * message with its bytes and boundary, in queue order, and the descriptors that ride along with it
 * (SCM_RIGHTS), each described as a process descriptor is, at a spare number the restore gives it
 * while it sends the message again (restore/socket-queue.ts). A stream pair without descriptors in
 * flight keeps the older info.socketData (its bytes, boundaries being invisible on a stream).
 */
import type { FdState } from './process-state';

export interface QueuedMessage {
  /** base64 */
  data: string;
  /** Descriptors in flight with this message (their `fd` is a number no process descriptor uses; info.inFlight is set). */
  fds?: FdState[];
  /** SCM_CREDENTIALS the kernel attached (the receiver has SO_PASSCRED). */
  creds?: { pid: number; uid: number; gid: number };
}

export function socketQueue(f: FdState): QueuedMessage[] | undefined {
  const q = f.info?.socketQueue;
  return Array.isArray(q) ? (q as QueuedMessage[]) : undefined;
}

/** Every descriptor in flight in the queues of `fds`. */
export function inFlightFds(fds: readonly FdState[]): FdState[] {
  return fds.flatMap((f) => (socketQueue(f) ?? []).flatMap((m) => m.fds ?? []));
}

/** The process's descriptors and those in flight in its socketpairs: what planning a descriptor looks at. */
export function withInFlight(fds: readonly FdState[]): FdState[] {
  const flight = inFlightFds(fds);
  return flight.length ? [...fds, ...flight] : [...fds];
}
