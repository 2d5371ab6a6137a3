/**
 * inotify watches, as /proc/PID/fdinfo describes them ("wd:1 ino:… sdev:… mask:… fhandle-bytes:8
 * fhandle-type:1 f_handle:…"), turned back into paths: the file handle is opened with
 * open_by_handle_at on a mount of the same filesystem (found through /proc/self/mountinfo) and the
 * path read from /proc/self/fd. Read-only (O_PATH); must never change anything.
 */
import { fstatSync, readFileSync, readlinkSync } from 'node:fs';
import { closeFd, copyToAddr, free, malloc, openPath, syscall, SysError } from '../native';

/**
 * `ino`/`dev` (dev as stat(2) gives it): the watched inode. `gone`: its file was deleted (no link
 * left, or the kernel no longer knows the handle: ESTALE), so no path leads to it.
 */
export interface InotifyWatch { wd: number; mask: number; path: string | null; why?: string; ino?: number; dev?: number; gone?: boolean }

/** The kernel's dev_t (MAJOR << 20 | MINOR) as userspace's (glibc makedev). */
function userDev(sdev: number): number {
  const major = Math.floor(sdev / 2 ** 20), minor = sdev % 2 ** 20;
  return (minor & 0xff) + (major & 0xfff) * 2 ** 8 + Math.floor(minor / 256) * 2 ** 20 + Math.floor(major / 4096) * 2 ** 32;
}

const O_PATH = 0o10000000, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000;
const NR_OPEN_BY_HANDLE_AT = 304;

function field(s: string, k: string): string | undefined {
  return new RegExp(`(?:^|\\s)${k}:(\\S+)`).exec(s)?.[1];
}

/** A mount point of the filesystem whose kernel dev_t is `sdev` (MAJOR << 20 | MINOR). */
function mountOf(sdev: number): string | null {
  const want = `${Math.floor(sdev / 2 ** 20)}:${sdev % 2 ** 20}`;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === want && f[3] === '/') return f[4]!;
  }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === want) return f[4]!;
  }
  return null;
}

export function parseWatch(line: string): InotifyWatch {
  const wd = Number(field(line, 'wd'));
  const mask = parseInt(field(line, 'mask') ?? '0', 16);
  const sdev = parseInt(field(line, 'sdev') ?? '', 16);
  const bytes = Number(field(line, 'fhandle-bytes') ? parseInt(field(line, 'fhandle-bytes')!, 16) : NaN);
  const type = parseInt(field(line, 'fhandle-type') ?? '', 16);
  const handle = field(line, 'f_handle');
  const inoField = field(line, 'ino');
  const id = { ...(inoField ? { ino: parseInt(inoField, 16) } : {}), ...(Number.isFinite(sdev) ? { dev: userDev(sdev) } : {}) };
  if (!Number.isFinite(wd) || !handle || !Number.isFinite(bytes) || !Number.isFinite(sdev)) return { wd, mask, path: null, why: 'the watch has no file handle', ...id };
  const mount = mountOf(sdev);
  if (!mount) return { wd, mask, path: null, why: `no mount of device ${sdev.toString(16)} is visible`, ...id };
  let mfd = -1;
  const fh = Buffer.alloc(8 + bytes);
  fh.writeUInt32LE(bytes, 0);
  fh.writeInt32LE(type, 4);
  Buffer.from(handle, 'hex').copy(fh, 8);
  const mem = malloc(fh.length);
  try {
    mfd = openPath(mount, O_DIRECTORY | O_CLOEXEC);
    copyToAddr(mem, fh);
    const fd = Number(syscall(NR_OPEN_BY_HANDLE_AT, [BigInt(mfd), mem, BigInt(O_PATH | O_CLOEXEC)], 'open_by_handle_at'));
    try {
      const path = readlinkSync(`/proc/self/fd/${fd}`);
      // An inode still in memory but unlinked resolves to "PATH (deleted)": no path leads to it.
      if (fstatSync(fd).nlink === 0) return { wd, mask, path: null, why: `its file ${path} was deleted`, gone: true, ...id };
      return { wd, mask, path, ...id };
    } finally {
      closeFd(fd);
    }
  } catch (e) {
    const gone = e instanceof SysError && e.errnoName === 'ESTALE';
    return { wd, mask, path: null, why: gone ? 'its file was deleted' : `the watched file could not be found again (${(e as Error).message})`, gone, ...id };
  } finally {
    free(mem);
    if (mfd >= 0) closeFd(mfd);
  }
}
