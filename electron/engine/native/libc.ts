/**
 * Raw libc entry points through koffi, declared once. Everything here is synchronous and must be
 * called from the one thread that owns a ptrace conversation (the engine worker); nothing here
 * ever yields to the event loop. Owns only declarations: no policy, no error translation (see
 * errors.ts and the typed wrappers beside this file). Remote (target) addresses are u64 BigInts;
 * local memory is passed as Buffers or as addresses from `malloc` (see memory.ts).
 */
import koffi from 'koffi';

const lib = koffi.load('libc.so.6');

type Fn = (...args: unknown[]) => number | bigint;
const fn = (name: string, ret: string, args: string[]): Fn => lib.func(name, ret, args) as Fn;

// ptrace and syscall are variadic in glibc; fixed prototypes are ABI-compatible on x86_64 for
// integer/pointer arguments, and faster than koffi's variadic calls.
export const c = {
  ptraceP: fn('ptrace', 'long', ['int', 'int', 'uint64_t', 'void *']),
  ptraceI: fn('ptrace', 'long', ['int', 'int', 'uint64_t', 'uint64_t']),
  /** Both addr and data are local buffers (PTRACE_PEEKSIGINFO: arguments in, records out). */
  ptracePP: fn('ptrace', 'long', ['int', 'int', 'void *', 'void *']),
  waitpid: fn('waitpid', 'int', ['int', 'void *', 'int']),
  kill: fn('kill', 'int', ['int', 'int']),
  syscall6: fn('syscall', 'long', ['long', 'uint64_t', 'uint64_t', 'uint64_t', 'uint64_t', 'uint64_t', 'uint64_t']),
  prctl: fn('prctl', 'int', ['int', 'uint64_t', 'uint64_t', 'uint64_t', 'uint64_t']),
  ioctlP: fn('ioctl', 'int', ['int', 'unsigned long', 'void *']),
  ioctlA: fn('ioctl', 'int', ['int', 'unsigned long', 'uint64_t']),
  open: fn('open', 'int', ['const char *', 'int', 'int']),
  close: fn('close', 'int', ['int']),
  pread: fn('pread', 'long', ['int', 'void *', 'size_t', 'int64_t']),
  pwrite: fn('pwrite', 'long', ['int', 'void *', 'size_t', 'int64_t']),
  preadA: fn('pread', 'long', ['int', 'uint64_t', 'size_t', 'int64_t']),
  pwriteA: fn('pwrite', 'long', ['int', 'uint64_t', 'size_t', 'int64_t']),
  processVmReadv: fn('process_vm_readv', 'long', ['int', 'uint64_t', 'unsigned long', 'uint64_t', 'unsigned long', 'unsigned long']),
  processVmWritev: fn('process_vm_writev', 'long', ['int', 'uint64_t', 'unsigned long', 'uint64_t', 'unsigned long', 'unsigned long']),
  malloc: fn('malloc', 'uint64_t', ['size_t']),
  free: fn('free', 'void', ['uint64_t']),
  /** memmove(dst, dst, 0) returns dst: how we learn a Buffer's address (valid only during a synchronous sequence). */
  addrOf: fn('memmove', 'uint64_t', ['void *', 'void *', 'size_t']),
  copyToAddr: fn('memcpy', 'uint64_t', ['uint64_t', 'void *', 'size_t']),
  copyFromAddr: fn('memcpy', 'uint64_t', ['void *', 'uint64_t', 'size_t']),
  mmap: fn('mmap', 'uint64_t', ['uint64_t', 'size_t', 'int', 'int', 'int', 'int64_t']),
  munmap: fn('munmap', 'int', ['uint64_t', 'size_t']),
  getpid: fn('getpid', 'int', []),
  gettid: fn('gettid', 'int', []),
  posixSpawn: fn('posix_spawn', 'int', ['void *', 'const char *', 'void *', 'void *', 'const char **', 'const char **']),
  posixSpawnp: fn('posix_spawnp', 'int', ['void *', 'const char *', 'void *', 'void *', 'const char **', 'const char **']),
  posixSpawnattrInit: fn('posix_spawnattr_init', 'int', ['void *']),
  posixSpawnattrDestroy: fn('posix_spawnattr_destroy', 'int', ['void *']),
  posixSpawnattrSetflags: fn('posix_spawnattr_setflags', 'int', ['void *', 'short']),
  posixSpawnFileActionsInit: fn('posix_spawn_file_actions_init', 'int', ['void *']),
  posixSpawnFileActionsDestroy: fn('posix_spawn_file_actions_destroy', 'int', ['void *']),
  posixSpawnFileActionsAddopen: fn('posix_spawn_file_actions_addopen', 'int', ['void *', 'int', 'const char *', 'int', 'int']),
  posixSpawnFileActionsAddchdir: fn('posix_spawn_file_actions_addchdir_np', 'int', ['void *', 'const char *']),
  execvp: fn('execvp', 'int', ['const char *', 'const char **']),
  setsid: fn('setsid', 'int', []),
  syncFileRange: fn('sync_file_range', 'int', ['int', 'int64_t', 'int64_t', 'unsigned int']),
  lseek: fn('lseek', 'int64_t', ['int', 'int64_t', 'int']),
};

/** A libc function that older glibc versions lack (null there), bound once on first use. */
export function optionalFn(name: string, ret: string, args: string[]): Fn | null {
  try {
    return fn(name, ret, args);
  } catch (_e) {
    return null;
  }
}

export function errno(): number {
  return koffi.errno();
}

export function toBig(v: number | bigint): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}
