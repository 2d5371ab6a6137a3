/**
 * Namespaces of the process that are not the engine's (state/namespaces.ts), and the names of its
 * own UTS namespace, read with an injected uname() (the host name shown by /proc is the reader's).
 */
import type { ProcessState } from '../state/process-state';
import { ownNamespaceKinds } from '../state/namespaces';
import { SYS } from '../native/sys';
import type { Probe } from './threads';

const UTS_FIELD = 65;

function field(b: Buffer, i: number): string {
  const s = b.subarray(i * UTS_FIELD, (i + 1) * UTS_FIELD);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? s.length : end).toString('utf8');
}

/** Sets state.namespaces; returns the probe that reads its UTS names when it has its own. */
export function captureNamespaces(pid: number, state: ProcessState): Probe | null {
  const kinds = ownNamespaceKinds(pid);
  if (kinds.length === 0) return null;
  state.namespaces = { kinds };
  if (!kinds.includes('uts')) return null;
  return {
    scratch: 6 * UTS_FIELD,
    calls: (addr) => [{ nr: SYS.uname, args: [addr] }],
    read: ([r], b) => {
      if (r === 0n) state.namespaces!.uts = { nodename: field(b, 1), domainname: field(b, 5) };
    },
  };
}
