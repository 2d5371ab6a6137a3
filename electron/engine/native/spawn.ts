/**
 * posix_spawn through libc: starts a program that is NOT tracked by Node's child_process, so
 * libuv's SIGCHLD handler never reaps it or steals its ptrace stops. The caller owns reaping it
 * (waitTid) if it stays our child. The child starts with descriptors 0-2 only. Owns only process
 * creation.
 *
 *   posixSpawn({ file, argv, env?, cwd?, stdout?, stderr?, setsid? }) -> pid
 */
import { c, optionalFn } from './libc';
import { sysError } from './errors';
import { O } from './memory';

export interface SpawnSpec {
  /** Program; searched in PATH when it has no slash. */
  file: string;
  argv: string[];
  /** "K=V" strings; default: the current environment. */
  env?: string[];
  cwd?: string;
  /** Files to append stdout / stderr to (stdin is /dev/null); default: inherit. */
  stdout?: string;
  stderr?: string;
  /** New session (POSIX_SPAWN_SETSID): detached from our terminal and process group. */
  setsid?: boolean;
}

const POSIX_SPAWN_SETSID = 0x80;
/** glibc 2.34+: closes every descriptor from 3 up in the child, whatever close-on-exec says. */
let addCloseFrom: ReturnType<typeof optionalFn> | undefined;
const O_CREAT = 0o100;
const O_APPEND = 0o2000;

export function posixSpawn(spec: SpawnSpec): number {
  const attr = Buffer.alloc(1024);
  const fa = Buffer.alloc(1024);
  const pidBuf = Buffer.alloc(4);
  c.posixSpawnattrInit(attr);
  c.posixSpawnFileActionsInit(fa);
  try {
    if (spec.setsid) c.posixSpawnattrSetflags(attr, POSIX_SPAWN_SETSID);
    if (spec.stdout || spec.stderr) c.posixSpawnFileActionsAddopen(fa, 0, '/dev/null', O.RDONLY, 0);
    if (spec.stdout) c.posixSpawnFileActionsAddopen(fa, 1, spec.stdout, O.WRONLY | O_CREAT | O_APPEND, 0o644);
    if (spec.stderr) c.posixSpawnFileActionsAddopen(fa, 2, spec.stderr, O.WRONLY | O_CREAT | O_APPEND, 0o644);
    if (spec.cwd) c.posixSpawnFileActionsAddchdir(fa, spec.cwd);
    // The program gets 0, 1 and 2 only: descriptors the engine inherited without close-on-exec
    // (seen: a pipe at 251 passed down by the shell that started Node) must not leak into it.
    addCloseFrom ??= optionalFn('posix_spawn_file_actions_addclosefrom_np', 'int', ['void *', 'int']);
    addCloseFrom?.(fa, 3);
    const env = spec.env ?? Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
    const spawnFn = spec.file.includes('/') ? c.posixSpawn : c.posixSpawnp;
    const r = Number(spawnFn(pidBuf, spec.file, fa, attr, [...spec.argv, null], [...env, null]));
    if (r !== 0) throw sysError(`posix_spawn(${spec.file})`, r, 'Check that the program exists and is executable');
    return pidBuf.readInt32LE(0);
  } finally {
    c.posixSpawnFileActionsDestroy(fa);
    c.posixSpawnattrDestroy(attr);
  }
}
