/**
 * Which checkpoint features this kernel allows, as engine.status reports them. The real probes
 * (a soft-dirty write-then-read round trip, the PAGEMAP_SCAN ioctl, uffd-wp) belong to
 * electron/engine/native/probe.ts; until that lands this answers only what can be read from /proc
 * and says "not probed" for the rest, rather than guessing. Never throws; result cached per thread.
 */
import { readFileSync } from 'node:fs';
import type { Feature } from '../../../shared/contract/engine';

export interface Features {
  ptrace: Feature;
  softDirty: Feature;
  pagemapScan: Feature;
  uffdWp: Feature;
}

let cached: Features | null = null;

function ptraceFeature(): Feature {
  let scope: string;
  try {
    scope = readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim();
  } catch {
    return { available: true, detail: 'No Yama LSM: ptrace is limited only by user ids.' };
  }
  const root = process.getuid?.() === 0;
  switch (scope) {
    case '0': return { available: true, detail: 'Yama ptrace_scope=0: any process of the same user can be traced.' };
    case '1': return { available: true, detail: root ? 'Yama ptrace_scope=1, running as root: any process can be traced.' : 'Yama ptrace_scope=1: only descendants (processes launched by Stasis) can be traced unless CAP_SYS_PTRACE is granted.' };
    case '2': return { available: root, detail: 'Yama ptrace_scope=2: only processes with CAP_SYS_PTRACE may trace.' };
    case '3': return { available: false, detail: 'Yama ptrace_scope=3: ptrace is disabled until reboot.' };
    default: return { available: null, detail: `Unknown Yama ptrace_scope value "${scope}".` };
  }
}

const notProbed = (what: string): Feature => ({ available: null, detail: `${what} has not been probed: the kernel probe module is not built yet.` });

export function probeFeatures(): Features {
  cached ??= {
    ptrace: ptraceFeature(),
    softDirty: notProbed('Soft-dirty page tracking'),
    pagemapScan: notProbed('The PAGEMAP_SCAN ioctl'),
    uffdWp: notProbed('Userfaultfd write-protect'),
  };
  return cached;
}
