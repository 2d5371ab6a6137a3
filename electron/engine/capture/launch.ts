/**
 * `stasis launch`: starts a program so that any later Stasis process may ptrace it, even where Yama
 * kernel.yama.ptrace_scope=1 allows ptrace only from ancestors.
 *
 * Mechanism (no helper binary to ship): posix_spawn `sh -c 'kill -STOP $$; exec "$@"'` in a new
 * session with stdio to a log file. While that shell is stopped, we (its parent, so Yama allows it)
 * seize it and inject prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY); Yama keeps that exception across
 * exec, for the life of the process. Then we detach and SIGCONT it and the shell execs the program
 * under the same PID. Kernels without Yama answer EINVAL, which is fine: nothing to lift there.
 *
 * The program is our child (posix_spawn, unknown to Node's child_process, so libuv never reaps it
 * or steals its ptrace stops); `reapLaunched()` collects it when it exits in a long-lived engine.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { StasisError } from '../../../shared/errors';
import { posixSpawn, waitTid, seize, interrupt, detach, SYS, PR, PR_SET_PTRACER_ANY, tryKill, WAIT } from '../native';
import { Tracee, injectSyscall } from '../tracer';
import { sleepMs } from '../sleep-sync';

export interface LaunchOptions {
  argv: string[];
  name?: string;
  cwd?: string;
  /** Directory for the log file (the store's logs/ directory). */
  logDir: string;
  env?: string[];
}

export interface LaunchResult {
  pid: number;
  log: string;
  name?: string;
  /** Whether the PR_SET_PTRACER exception was set (false where the kernel has no Yama). */
  ptracerAny: boolean;
}

const launched = new Set<number>();
const SIGCONT = 18;

export function launch(opts: LaunchOptions): LaunchResult {
  if (opts.argv.length === 0) throw new StasisError('INVALID_INPUT', 'Nothing to launch: give a command after `--`.');
  mkdirSync(opts.logDir, { recursive: true, mode: 0o700 });
  const base = (opts.name ?? opts.argv[0]!.split('/').pop() ?? 'program').replace(/[^\w.-]+/g, '_');
  const log = join(opts.logDir, `launch-${base}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  const cwd = opts.cwd ? resolve(opts.cwd) : process.cwd();
  const pid = posixSpawn({
    file: '/bin/sh',
    argv: ['sh', '-c', 'kill -STOP $$; exec "$@"', 'stasis-launch', ...opts.argv],
    cwd,
    stdout: log,
    stderr: log,
    setsid: true,
    ...(opts.env ? { env: opts.env } : {}),
  });
  let ptracerAny: boolean;
  try {
    // Wait for the shell's self-stop (it is our child: WUNTRACED reports the group stop).
    const st = waitTid(pid, WAIT.WUNTRACED);
    if (!st || !st.stopped) throw new StasisError('INTERNAL', `The launch shell exited at once (status ${st?.raw}); check ${log}.`);
    seize(pid);
    const t = new Tracee(pid);
    t.addSlot(pid);
    try {
      interrupt(pid);
      for (;;) {
        const s = waitTid(pid);
        if (s && s.stopped) break;
        if (s && !s.stopped) throw new StasisError('INTERNAL', 'The launch shell ended unexpectedly.');
      }
      const r = injectSyscall(t, pid, SYS.prctl, [BigInt(PR.SET_PTRACER), PR_SET_PTRACER_ANY, 0n, 0n, 0n]);
      ptracerAny = r === 0n;
    } finally {
      try {
        detach(pid);
      } catch {
        t.release();
      }
    }
  } catch (e) {
    tryKill(pid, 9);
    try {
      waitTid(pid);
    } catch {
      // reaped
    }
    throw e instanceof StasisError ? e : new StasisError('INTERNAL', `Could not launch ${opts.argv[0]}: ${(e as Error).message}`);
  }
  tryKill(pid, SIGCONT);
  launched.add(pid);
  // Wait for the exec so the caller (and the store's target identity) sees the program, not the
  // shell: until then the cmdline is still the shell's own, which carries the 'stasis-launch' marker.
  // Bounded: a program that fails to exec exits, and /proc reads then fail.
  for (let i = 0; i < 2000; i++) {
    try {
      if (!stillTheShell(pid)) break;
    } catch {
      break;
    }
    sleepMs(1);
  }
  return { pid, log, ...(opts.name ? { name: opts.name } : {}), ptracerAny };
}

function stillTheShell(pid: number): boolean {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  return argv[0] === 'sh' && argv[3] === 'stasis-launch';
}

/** Reaps programs we launched that have exited (call periodically in a long-lived engine). */
export function reapLaunched(): number[] {
  const done: number[] = [];
  for (const pid of launched) {
    try {
      const st = waitTid(pid, WAIT.WNOHANG);
      if (st && !st.stopped) {
        launched.delete(pid);
        done.push(pid);
      }
    } catch {
      launched.delete(pid);
    }
  }
  return done;
}
