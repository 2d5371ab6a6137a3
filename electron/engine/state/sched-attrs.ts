/**
 * Numbers and the affinity-mask encoding shared by capture/sched.ts (reads a thread's scheduling
 * and prctl state) and restore/sched.ts (gives it back). Owns only numbers and the encoding.
 */
export const NR_SCHED = { sched_getaffinity: 204, sched_setaffinity: 203, sched_getattr: 315, sched_setattr: 314, ioprio_get: 252, ioprio_set: 251, setpriority: 141 } as const;
export const PR_GET_PDEATHSIG = 2, PR_SET_PDEATHSIG = 1, PR_GET_DUMPABLE = 3, PR_SET_DUMPABLE = 4, PR_SET_TIMERSLACK = 29, PR_GET_TIMERSLACK = 30,
  PR_SET_CHILD_SUBREAPER = 36, PR_GET_CHILD_SUBREAPER = 37, PR_SET_THP_DISABLE = 41, PR_GET_THP_DISABLE = 42;
export const SCHED_ATTR_SIZE = 56;

/** Mask bytes (little-endian words as the kernel writes them) -> hex, highest CPU first. */
export function maskToHex(b: Buffer): string {
  let hex = '';
  for (let i = b.length - 1; i >= 0; i--) hex += b[i]!.toString(16).padStart(2, '0');
  return hex.replace(/^0+(?=.)/, '');
}

export function hexToMask(hex: string, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  const h = hex.length % 2 ? '0' + hex : hex;
  for (let i = 0; i < h.length / 2 && i < bytes; i++) b[i] = parseInt(h.slice(h.length - 2 * (i + 1), h.length - 2 * i), 16);
  return b;
}


/** CPU numbers set in a hex mask. */
export function cpusOf(hex: string): number[] {
  const out: number[] = [];
  const h = hex.replace(/^0x/, '');
  for (let i = 0; i < h.length; i++) {
    const nib = parseInt(h[h.length - 1 - i]!, 16);
    for (let bit = 0; bit < 4; bit++) if ((nib >> bit) & 1) out.push(i * 4 + bit);
  }
  return out;
}

/** "0-3,6" (as /sys/devices/system/cpu/online prints it) -> CPU numbers. */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}
