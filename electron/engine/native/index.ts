/**
 * The native layer: typed koffi bindings to libc (ptrace, waitpid, process_vm_readv/writev,
 * pread/pwrite on /proc/PID/mem, ioctl, prctl, syscall, kill, posix_spawn) and kernel probes.
 * Failed calls throw SysError (a StasisError whose message names the errno). Synchronous only;
 * call from the engine worker thread, never interleave a ptrace conversation with awaits.
 */
export * from './errors';
export * from './ptrace';
export * from './memory';
export * from './sys';
export * from './spawn';
export * from './probe';
export * from './uffd';
export * from './syscall-loop';
