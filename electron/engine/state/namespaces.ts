/**
 * Namespaces a process ran in that are not the engine's own. A restored process is a child of the
 * engine and so lives in the engine's namespaces: one that had its own would silently come back
 * with the machine's host name, System V objects or clock offsets. A UTS namespace is made again
 * (unshare + its names, restore/namespaces.ts); IPC, user and time namespaces are refused by the
 * pre-flight. Mount, network and cgroup namespaces are only named (ok): `ip netns exec` and
 * systemd sandboxing give them to processes that Stasis has always restored into its own, where
 * the same paths and (refused anyway) sockets are what those programs use in practice.
 */
import { readlinkSync } from 'node:fs';

/** The kinds checked, as /proc/PID/ns names them (pid: a process in another one cannot be traced the same way). */
export const NS_KINDS = ['uts', 'ipc', 'mnt', 'net', 'user', 'cgroup', 'time'] as const;
export type NsKind = (typeof NS_KINDS)[number];

export interface OwnNamespaces {
  /** Kinds in which the process was not in the engine's namespace at capture. */
  kinds: NsKind[];
  /** Its UTS names (uname nodename, domainname), when `kinds` has uts. */
  uts?: { nodename: string; domainname: string };
}

function nsId(pid: number | 'self', kind: NsKind): string {
  try { return readlinkSync(`/proc/${pid}/ns/${kind}`); } catch { return ''; }
}

/** The kinds in which `pid` is not in the engine's namespace (an unreadable link counts as the same). */
export function ownNamespaceKinds(pid: number): NsKind[] {
  return NS_KINDS.filter((k) => { const theirs = nsId(pid, k); return theirs !== '' && theirs !== nsId('self', k); });
}

const WHAT: Record<NsKind, string> = {
  uts: 'UTS (host name)', ipc: 'IPC (System V objects, POSIX message queues)', mnt: 'mount', net: 'network',
  user: 'user', cgroup: 'cgroup', time: 'time (clock offsets)',
};

/** Why the process cannot come back exactly in the engine's namespaces, or null. */
const REFUSED: ReadonlySet<NsKind> = new Set<NsKind>(['ipc', 'user', 'time']);

/** Namespaces of its own it comes back without, in words (not refused), or null. */
export function namespaceNote(ns: OwnNamespaces | undefined): string | null {
  const kept = (ns?.kinds ?? []).filter((k) => k !== 'uts' && !REFUSED.has(k));
  return kept.length ? `It ran in its own ${kept.map((k) => WHAT[k]).join(', ')} namespace${kept.length > 1 ? 's' : ''} and comes back in Stasis's.` : null;
}

export function namespaceProblem(ns: OwnNamespaces | undefined): string | null {
  const refused = (ns?.kinds ?? []).filter((k) => REFUSED.has(k));
  if (refused.length === 0) return null;
  return `the process ran in ${refused.length === 1 ? 'a namespace' : 'namespaces'} of its own (${refused.map((k) => WHAT[k]).join(', ')}), not the one Stasis runs in; restored into Stasis's it would silently see the machine's instead`;
}
