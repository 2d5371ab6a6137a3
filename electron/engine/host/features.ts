/**
 * Which checkpoint features this kernel allows, as engine.status reports them: a translation of
 * native/probe.ts's real probes (which try each feature, never trust version numbers) into
 * user-facing sentences. Never throws: if the probes themselves cannot run (no koffi binary, say),
 * every feature is reported as unknown with the reason. Cached per thread (the probes spawn a child).
 */
import { probeKernelFeatures } from '../native/probe';
import type { Feature } from '../../../shared/contract/engine';

export interface Features {
  ptrace: Feature;
  softDirty: Feature;
  pagemapScan: Feature;
  uffdWp: Feature;
  sealedSystemMappings: Feature;
}

let cached: Features | null = null;

function fromProbe(): Features {
  const k = probeKernelFeatures();
  const yama = k.ptrace.yamaScope === null ? 'no Yama LSM' : `Yama ptrace_scope=${k.ptrace.yamaScope}`;
  return {
    ptrace: {
      available: k.ptrace.usable,
      detail: k.ptrace.usable
        ? `Seized and interrupted a test process (${yama}${k.xstateBytes ? `, ${k.xstateBytes}-byte xstate` : ''}).`
        : `ptrace does not work here: ${k.ptrace.reason ?? 'unknown reason'}.`,
    },
    softDirty: {
      available: k.softDirty,
      detail: k.softDirty
        ? 'A write after clearing soft-dirty bits set pagemap bit 55: incremental checkpoints can track dirty pages.'
        : 'A write after clearing soft-dirty bits left pagemap bit 55 at 0 (kernel built without CONFIG_MEM_SOFT_DIRTY): incrementals compare page hashes instead.',
    },
    pagemapScan: {
      available: k.pagemapScan,
      detail: k.pagemapScan ? 'The PAGEMAP_SCAN ioctl answers on /proc/PID/pagemap (kernel 6.7+).' : 'The PAGEMAP_SCAN ioctl is refused by this kernel; pagemap is read page by page.',
    },
    uffdWp: {
      available: k.uffdWp,
      detail: !k.uffdWp
        ? 'userfaultfd write-protect is not available (disabled, or not permitted for this user): live checkpoints use a fork snapshot.'
        : k.uffdWpAsync && k.pagemapScan
          ? 'userfaultfd write-protect in async mode (UFFD_FEATURE_WP_ASYNC): live checkpoints pre-copy memory while the process runs, and a running engine tracks dirty pages between checkpoints.'
          : 'userfaultfd offers write-protect faults (UFFD_FEATURE_PAGEFAULT_FLAG_WP) but not async mode: live checkpoints use a fork snapshot.',
    },
    sealedSystemMappings: {
      available: k.sealedSystemMappings,
      detail: k.sealedSystemMappings === null
        ? 'Could not tell whether [vdso]/[vvar] are sealed.'
        : k.sealedSystemMappings
          ? '[vdso]/[vvar] are sealed (VmFlags "sl"): restore must keep them where the kernel put them.'
          : '[vdso]/[vvar] are not sealed: restore may move them to their checkpointed addresses.',
    },
  };
}

export function probeFeatures(): Features {
  if (cached) return cached;
  try {
    cached = fromProbe();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const unknown: Feature = { available: null, detail: `The kernel probes could not run: ${why}` };
    cached = { ptrace: unknown, softDirty: unknown, pagemapScan: unknown, uffdWp: unknown, sealedSystemMappings: unknown };
  }
  return cached;
}
