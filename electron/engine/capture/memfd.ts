/**
 * The seals of each memfd descriptor (F_GET_SEALS on our own copy of it: seals belong to the file,
 * and /proc shows them nowhere). A memfd made without MFD_ALLOW_SEALING reads F_SEAL_SEAL, so the
 * restore seals exactly what the program could and could not do to it. Its bytes are saved like a
 * deleted file's (capture/ghost-files.ts).
 */
import type { FdState } from '../state/process-state';
import { syscall, SYS } from '../native/sys';
import { closeFd } from '../native/memory';
import { takeFd } from '../native/uffd';

const F_GET_SEALS = 1034n;

export function captureMemfdSeals(pid: number, fds: FdState[], warnings: string[]): void {
  const seen = new Map<number, number>();
  for (const f of fds) {
    if (f.kind !== 'memfd' || f.inode === undefined) continue;
    let seals = seen.get(f.inode);
    if (seals === undefined) {
      try {
        const ours = takeFd(pid, f.fd);
        try { seals = Number(syscall(SYS.fcntl, [BigInt(ours), F_GET_SEALS], `F_GET_SEALS of fd ${f.fd}`)); } finally { closeFd(ours); }
      } catch (e) {
        warnings.push(`fd ${f.fd} (${f.target}): its seals could not be read (${(e as Error).message})`);
        continue;
      }
      seen.set(f.inode, seals);
    }
    f.info = { ...(f.info ?? {}), seals };
  }
}
