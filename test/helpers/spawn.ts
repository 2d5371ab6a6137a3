/**
 * Starts test targets that are NOT children of the Node process. libuv's SIGCHLD handler calls
 * waitpid on Node's own children and would steal ptrace stops, so a target is started by a
 * short-lived `sh` whose background subshell becomes the target's parent: that subshell waits for
 * the target and writes its exit status to a file, which is how waitExit() learns it. Owns only
 * starting, signalling and observing targets; never ptraces.
 *
 *   const t = spawnDetached([bin, 'arg'], { log: '/tmp/x.log' });
 *   t.pid; t.alive(); t.kill(); await t.waitExit(5000);  // -> { code, signal }
 *
 * Always call kill() in teardown (it is idempotent).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout + stderr go here (appended); default /dev/null. */
  log?: string;
}

export interface ExitStatus {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: number | null;
}

export interface DetachedProcess {
  pid: number;
  /** True while the process exists and is not a zombie. */
  alive(): boolean;
  /** Sends a signal (default SIGKILL); never throws if the process is already gone. */
  kill(signal?: NodeJS.Signals | number): void;
  /** Resolves with the exit status once the process has ended; rejects after timeoutMs. */
  waitExit(timeoutMs?: number): Promise<ExitStatus>;
}

const sleepBuf = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepBuf, 0, 0, ms);
}

// $1 = state dir, $2 = log, rest = argv. The subshell is the target's parent and records its status.
const script = `d=$1; log=$2; shift 2
( "$@" </dev/null >>"$log" 2>&1 &
  echo $! > "$d/pid.tmp"; mv "$d/pid.tmp" "$d/pid"
  wait $!; echo $? > "$d/status.tmp"; mv "$d/status.tmp" "$d/status" ) </dev/null >/dev/null 2>&1 &`;

/** /proc/PID/stat state letter, or null if the pid does not exist. */
export function procState(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

// State dirs still present when this process exits (kill() without waitExit()) are removed then.
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
});

export function spawnDetached(argv: string[], opts: SpawnOptions = {}): DetachedProcess {
  if (argv.length === 0) throw new Error('spawnDetached needs a program to run.');
  const dir = mkdtempSync(join(tmpdir(), 'stasis-spawn-'));
  liveDirs.add(dir);
  const r = spawnSync('sh', ['-c', script, 'sh', dir, opts.log ?? '/dev/null', ...argv], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: 'ignore',
  });
  if (r.status !== 0) throw new Error(`sh could not start ${argv[0]} (exit ${r.status}).`);
  const pidFile = join(dir, 'pid');
  const deadline = Date.now() + 5000;
  while (!existsSync(pidFile)) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${argv[0]} to start.`);
    sleepSync(1);
  }
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  // The subshell writes the pid right after its fork: wait until the child has exec'd the target
  // (its command line is argv), so a caller never looks at, or checkpoints, the shell before exec.
  const want = `${argv.join('\0')}\0`;
  const execDeadline = Date.now() + 2000;
  for (;;) {
    let cmdline: string | null = null;
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { /* exited already */ }
    if (cmdline === null || cmdline === want || Date.now() > execDeadline) break;
    sleepSync(1);
  }
  const statusFile = join(dir, 'status');
  const readStatus = (): ExitStatus | null => {
    if (!existsSync(statusFile)) return null;
    const n = Number(readFileSync(statusFile, 'utf8').trim());
    return n > 128 ? { code: null, signal: n - 128 } : { code: n, signal: null };
  };
  let cleaned = false;
  const cleanup = (): void => {
    if (!cleaned) rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
    cleaned = true;
  };
  return {
    pid,
    alive() {
      const s = procState(pid);
      return s !== null && s !== 'Z' && s !== 'X' && readStatus() === null;
    },
    kill(signal: NodeJS.Signals | number = 'SIGKILL') {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    },
    async waitExit(timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const st = readStatus();
        if (st) {
          cleanup();
          return st;
        }
        if (Date.now() > end) throw new Error(`Process ${pid} did not exit within ${timeoutMs} ms.`);
        await new Promise((res) => setTimeout(res, 5));
      }
    },
  };
}
