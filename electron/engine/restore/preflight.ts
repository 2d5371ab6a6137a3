/**
 * Pre-flight: can checkpoint #id be restored on this machine, now? Returns the checklist the restore
 * wizard shows ({id, label, ok, reason, fix} per item). Side-effect free: it reads the store, stats
 * files and reads /proc; it must never start, trace or change anything.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { cpusOf, parseCpuList } from '../state/sched-attrs';
import { deletedExeMapping, type ProcessState } from '../state/process-state';
import { checkCredentials } from './creds';
import { planFd, type RedirectOptions } from './fd-plan';
import { treeQueueRefusal } from './queue-plan';
import { withInFlight } from '../state/socket-queue';
import { CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN, CAP_SYS_RESOURCE, hasCap, hostFacts, type HostFacts } from './host-facts';
import { TASK_SIZE, isSpecial } from './plan';
import { sharedAliases } from './shared-aliases';
import { planMappedGhost } from './mapped-ghosts';
import { attachesLive, currentSegments, segmentProblem } from '../state/sysv-shm';
import { semUndoProblem } from '../state/sysv-sem';
import { namespaceNote, namespaceProblem } from '../state/namespaces';
import { lockConflicts, plannedLocks } from './file-locks';
import { describeLock } from '../state/file-lock';
import { afterReaping, mayTakePids } from './pid-free';

export interface PreflightItem {
  id: string;
  label: string;
  ok: boolean;
  reason: string;
  fix: string | null;
}

export interface PreflightResult {
  ok: boolean;
  items: PreflightItem[];
}

function item(id: string, label: string, ok: boolean, reason: string, fix: string | null = null): PreflightItem {
  return { id, label, ok, reason, fix: ok ? null : fix };
}

function mtimeNs(st: { mtimeNs: bigint }): string {
  return st.mtimeNs.toString();
}

/** Why a file is not the one the checkpoint saw, or null when inode, size and mtime all match. */
function fileChanged(path: string, want: { inode?: number; size?: number; mtimeNs?: string }): string | null {
  let st;
  try { st = statSync(path, { bigint: true }); } catch (_e) { return `${path} no longer exists`; }
  if (want.inode !== undefined && want.inode !== 0 && Number(st.ino) !== want.inode) return `${path} was replaced (inode ${st.ino}, was ${want.inode})`;
  if (want.size !== undefined && Number(st.size) !== want.size) return `${path} changed size (${st.size} bytes, was ${want.size})`;
  if (want.mtimeNs !== undefined && mtimeNs(st) !== want.mtimeNs) return `${path} was modified after the checkpoint (mtime differs)`;
  return null;
}

export function preflightState(state: ProcessState, redirect: RedirectOptions, host: HostFacts = hostFacts()): PreflightResult {
  const items: PreflightItem[] = [];

  const threads = state.threads.length;
  const leader = state.threads.some((t) => t.tid === state.pid);
  const noFpu = state.threads.filter((t) => !t.xstate && !t.fpregs).map((t) => t.tid);
  items.push(item('threads', threads === 1 ? 'One thread' : `${threads} threads`, leader && noFpu.length === 0,
    !leader ? `The main thread (${state.pid}) had exited while ${threads} other thread(s) ran: a process without its leader cannot be rebuilt.`
      : noFpu.length > 0 ? `The checkpoint has no FPU/vector registers for thread(s) ${noFpu.join(', ')}: they would come back with different floating-point state.`
        : threads === 1 ? 'The checkpoint has one thread.'
          : `Each of the ${threads} threads comes back with its registers, FPU/vector state, TLS base, signal mask and pending signals, rseq area and robust futex list, and its saved thread id when free.`,
    !leader ? 'Checkpoint the process while its main thread is alive.' : 'Take a new checkpoint: this one was made by a version that did not save every thread\'s registers.'));

  const sameKernel = state.kernel.release === host.release;
  items.push(item('kernel', 'Same kernel', sameKernel,
    sameKernel ? `Kernel ${host.release}, as at checkpoint time.` : `The checkpoint was taken on kernel ${state.kernel.release}; this machine runs ${host.release}.`,
    `Boot kernel ${state.kernel.release} to restore this checkpoint.`));

  const vdsoOk = (state.kernel.vdsoSize === undefined || state.kernel.vdsoSize === host.vdsoSize)
    && (state.kernel.vdsoSha256 === undefined || state.kernel.vdsoSha256 === host.vdsoSha256);
  items.push(item('vdso', 'Same vdso', vdsoOk,
    vdsoOk ? 'The [vdso] image matches the one the process used.' : 'The [vdso] image differs from the one at checkpoint time, so the program\'s calls into it would land in the wrong code.',
    `Restore on the kernel the checkpoint was taken on (${state.kernel.release}).`));

  items.push(item('sealed-mappings', 'Movable system mappings', !host.sealedSystemMappings,
    host.sealedSystemMappings ? 'This kernel seals [vdso]/[vvar] (CONFIG_MSEAL_SYSTEM_MAPPINGS), so they cannot be moved to the checkpointed addresses.' : '[vdso] and [vvar] can be moved.',
    'Boot a kernel without CONFIG_MSEAL_SYSTEM_MAPPINGS (or with it disabled) to restore.'));

  const unknownSpecial = state.mappings.filter((m) => m.kind === 'other-special' && m.start < TASK_SIZE);
  items.push(item('special-mappings', 'Known special mappings', unknownSpecial.length === 0,
    unknownSpecial.length === 0 ? 'Only [vvar], [vvar_vclock], [vdso], [heap] and [stack] special mappings.' : `Unsupported kernel mappings: ${unknownSpecial.map((m) => m.path).join(', ')}.`,
    'This checkpoint uses a kernel mapping Stasis cannot recreate; it cannot be restored yet.'));

  let exeProblem: string | null = null;
  let exeFix = 'Reinstall the exact program version the checkpoint was taken from, or restore a checkpoint taken with the current version.';
  if (state.exeDeleted) {
    // Deleted while it ran: it comes back from the bytes saved with its mapping, like a deleted library.
    const m = deletedExeMapping(state);
    const g = m ? planMappedGhost(m, state.mappings) : { refuse: `the executable ${state.exe} was deleted while the program ran and is not mapped, so its bytes are not in the checkpoint`, fix: exeFix };
    if ('refuse' in g) { exeProblem = g.refuse; exeFix = g.fix; }
  } else if (state.exeFile) exeProblem = fileChanged(state.exe, state.exeFile);
  else if (!existsSync(state.exe)) exeProblem = `${state.exe} no longer exists`;
  items.push(item('exe', 'Executable unchanged', exeProblem === null,
    exeProblem ?? (state.exeDeleted ? `${state.exe} was deleted while the program ran: it comes back from the checkpoint, deleted again.` : `${state.exe} is the file the process ran.`),
    exeFix));

  const fileProblems: string[] = [];
  const ghostFixes = new Set<string>();
  const recreated: string[] = [];
  const seen = new Set<string>();
  for (const m of state.mappings) {
    if ((m.kind !== 'file-private' && m.kind !== 'file-shared') || seen.has(m.path)) continue;
    seen.add(m.path);
    if (m.deleted) {
      // Shared ones are shared memory now (capture/mappings.ts); private ones are recreated from their saved bytes.
      if (m.kind === 'file-shared') { fileProblems.push(`${m.path} was already deleted at checkpoint time and is mapped shared, which this checkpoint does not save (an older one)`); continue; }
      const g = planMappedGhost(m, state.mappings);
      if ('refuse' in g) { fileProblems.push(g.refuse); ghostFixes.add(g.fix); } else recreated.push(m.path);
      continue;
    }
    const p = fileChanged(m.path, { inode: m.inode, size: m.file?.size, mtimeNs: m.file?.mtimeNs });
    if (p) fileProblems.push(p);
  }
  // A deleted file both mapped shared (restored as shared memory) and open (restored as a new unlinked file) would become two.
  for (const m of state.mappings) {
    if (m.kind !== 'shared-anon' || !m.deleted || !m.path.startsWith('/') || m.path === '/dev/zero' || m.path.startsWith('/memfd:') || m.path.startsWith('/SYSV')) continue;
    const fd = state.fds.find((f) => f.inode === m.inode && f.target === `${m.path} (deleted)`);
    if (fd) fileProblems.push(`${m.path} was deleted while mapped shared and open as fd ${fd.fd}: its mapping and its descriptor would come back as two different files`);
  }
  items.push(item('mapped-files', 'Mapped files unchanged', fileProblems.length === 0,
    fileProblems.length === 0 ? `${seen.size} mapped files unchanged.${recreated.length ? ` Deleted at checkpoint time and recreated from the checkpoint: ${recreated.join(', ')}.` : ''}` : fileProblems.join('; ') + '.',
    ghostFixes.size ? [...ghostFixes].join(' ') : 'Restore the exact library and data files the process had mapped (e.g. undo a package upgrade), or take a new checkpoint.'));

  const segments = currentSegments();
  const shmProblems = state.mappings.filter(attachesLive).map((m) => segmentProblem(m, segments)).filter((x): x is string => x !== null);
  items.push(item('sysv-shm', 'System V shared memory', shmProblems.length === 0,
    shmProblems.length === 0 ? `${new Set(state.mappings.filter(attachesLive).map((m) => m.inode)).size} System V segment(s) attached again as they are now.` : `${shmProblems.join('; ')}: a private copy would no longer be shared with the other processes or found by its id.`,
    'A System V segment lives until it is removed (IPC_RMID, ipcrm) or the machine restarts: restore before that, or checkpoint the program when it has detached it.'));

  const nsProblem = namespaceProblem(state.namespaces);
  items.push(item('namespaces', 'Namespaces', nsProblem === null,
    nsProblem ?? [state.namespaces?.kinds.includes('uts') ? `The process's own UTS namespace is made again with its host name ${state.namespaces.uts?.nodename ?? '?'}.` : 'The process ran in the same IPC, user, time and UTS namespaces as Stasis.', namespaceNote(state.namespaces)].filter(Boolean).join(' '),
    'Run Stasis inside those namespaces for both the checkpoint and the restore (e.g. `nsenter --target PID --all stasis ...`), so the process is in the namespaces Stasis runs in.'));

  const semProblem = state.semUndo?.length ? semUndoProblem(state.semUndo) : null;
  items.push(item('sysv-sem', 'System V semaphores held (SEM_UNDO)', semProblem === null,
    semProblem ?? (state.semUndo?.length ? `${state.semUndo.length} semaphore(s) the process held with SEM_UNDO are taken again.` : 'The process held no System V semaphore with SEM_UNDO (or the checkpoint was not taken with --kill, the only time that can be measured).'),
    'Restore while the semaphore set exists and the semaphores the process held are free (the other processes using them may be holding them now).'));

  const aliases = sharedAliases(state.mappings);
  const hex = (m: { start: bigint; end: bigint }): string => `${m.start.toString(16)}-${m.end.toString(16)}`;
  items.push(item('shared-aliases', 'Shared memory at one address each', aliases.length === 0,
    aliases.length === 0 ? 'Shared memory seen at several addresses (if any) can be mapped the same way again.'
      : `Shared memory mapped at two addresses with partly overlapping ranges of one object (${aliases.map((x) => `${hex(x.a)} and ${hex(x.b)} share some pages of ${x.a.path || 'one object'}`).join('; ')}): restore would give each address its own copy, so a write through one would no longer show through the other.`,
    'Stasis recreates shared memory at a second address only when one mapping lies wholly inside the other; checkpoint the program at a point where its shared mappings do not partly overlap.'));

  const badRanges = state.mappings.filter((m) => m.kind !== 'vsyscall' && !isSpecial(m) && (m.end > TASK_SIZE || m.start < host.mmapMinAddr));
  items.push(item('address-ranges', 'Address ranges usable', badRanges.length === 0,
    badRanges.length === 0 ? `${state.mappings.length} mappings fit this machine's address space.` : `Mappings outside the usable address space: ${badRanges.map((m) => `${m.start.toString(16)}-${m.end.toString(16)}`).join(', ')}.`,
    'Lower vm.mmap_min_addr or restore on a machine with a larger address space.'));

  const fdRefusals: string[] = [];
  const fdFixes = new Set<string>();
  const fdNotes: string[] = [];
  const every = withInFlight(state.fds);
  for (const f of state.fds) {
    // A pipe or socketpair to another process of a tree checkpoint: the tree restore reattaches it (restore/tree.ts).
    if ((f.kind === 'pipe' && f.info?.treePipe === true) || (f.kind === 'socket' && typeof f.info?.treeSocket === 'string')) {
      const refused = f.kind === 'socket' ? treeQueueRefusal(f, every, (x) => planFd(x, redirect, every)) : null;
      if (refused) {
        fdRefusals.push(refused.reason);
        fdFixes.add(refused.fix);
      } else fdNotes.push(`fd ${f.fd}: ${f.target} is reattached to the other processes of the tree that hold it`);
      continue;
    }
    const a = planFd(f, redirect, every);
    if (a.action === 'refuse') {
      fdRefusals.push(a.reason);
      fdFixes.add(a.fix);
    }
    else if (a.action === 'redirect') fdNotes.push(`fd ${a.fd}: ${a.note}`);
    else if ((a.action === 'open' || a.action === 'fifo' || a.action === 'ghost' || a.action === 'socket' || a.action === 'pty-master' || a.action === 'pty-slave') && a.note) fdNotes.push(`fd ${a.fd}: ${a.note}`);
    else if ((a.action === 'epoll' || a.action === 'inotify') && a.dropped) fdNotes.push(`fd ${a.fd} (${a.action}): ${a.dropped.join('; ')}`);
  }
  items.push(item('fds', 'File descriptors reopenable', fdRefusals.length === 0,
    fdRefusals.length === 0 ? `${state.fds.length} descriptors can be reopened.${fdNotes.length ? ' ' + fdNotes.join('; ') + '.' : ''}` : fdRefusals.join('; ') + '.',
    fdFixes.size ? [...fdFixes].join(' ') : 'Make the missing files available again (or close those descriptors in the program before checkpointing).'));

  items.push(locksItem(state));
  items.push(affinityItem(state));

  const cwdOk = existsSync(state.cwd) && statSync(state.cwd).isDirectory();
  // The kernel names a directory deleted while the process was in it "PATH (deleted)".
  const goneBefore = / \(deleted\)$/.exec(state.cwd) ? state.cwd.slice(0, -' (deleted)'.length) : null;
  items.push(item('cwd', 'Working directory exists', cwdOk,
    cwdOk ? `${state.cwd} exists.`
      : goneBefore ? `The working directory ${goneBefore} had already been deleted when the checkpoint was taken (the process was running in a removed directory).`
        : `The working directory ${state.cwd} no longer exists.`,
    goneBefore ? 'This checkpoint cannot come back where it was: its directory exists nowhere. Take a new checkpoint once the program works in a directory that exists.'
      : `Recreate the directory ${state.cwd}.`));

  const root = host.euid === 0 || (hasCap(host, CAP_SYS_RESOURCE) && (hasCap(host, CAP_CHECKPOINT_RESTORE) || hasCap(host, CAP_SYS_ADMIN)));
  items.push(item('privileges', 'Privileges', root,
    root ? 'Running with the privileges restore needs (ptrace, PR_SET_MM_MAP).' : 'Restore needs root (or CAP_SYS_RESOURCE with CAP_CHECKPOINT_RESTORE) to set the memory layout of the new process.',
    'Run Stasis as root (sudo), or grant it cap_sys_resource,cap_checkpoint_restore.'));

  const creds = checkCredentials(state, host);
  items.push(item('credentials', 'Same user and group', creds.ok, creds.reason, creds.fix));
  items.push(capabilitiesItem(state, host));

  // Raising a hard limit above ours needs CAP_SYS_RESOURCE; without it the limit would come back lower.
  const RLIM_INF = 0xffffffffffffffffn;
  const tooHigh = hasCap(host, CAP_SYS_RESOURCE) ? [] : state.rlimits.filter((l) => {
    const ours = host.hardLimits[l.resource];
    if (ours === undefined || ours === null) return false;
    const want = l.max < 0n ? RLIM_INF : l.max;
    return want > ours;
  });
  items.push(item('rlimits', 'Resource limits', tooHigh.length === 0,
    tooHigh.length === 0 ? `${state.rlimits.length} resource limits can be set again.` : `The process had higher hard limits than Stasis runs with, and raising them needs CAP_SYS_RESOURCE: ${tooHigh.map((l) => `${l.name || `RLIMIT ${l.resource}`} ${l.max < 0n ? 'unlimited' : l.max} > ${host.hardLimits[l.resource]}`).join(', ')}.`,
    'Run Stasis with CAP_SYS_RESOURCE, or with hard limits at least as high as the process had (ulimit -H).'));

  const pidBusy = afterReaping([state.pid]).length > 0;
  const pidPriv = mayTakePids(host);
  // Not a refusal: most programs never look at their PID again, but some remember it (Python's
  // asyncio ignores its running loop under another PID, and PID and lock files name it).
  const newPid = ' A program that remembers its PID (Python asyncio, PID or lock files) may not recognise itself under a new one: end the original (and let it be reaped) first to get the PID back.';
  items.push(item('pid', 'PID', true,
    pidBusy ? `PID ${state.pid} is in use (the original may still run, or be an unreaped zombie): the restored process gets a new PID.${newPid}`
      : pidPriv ? `PID ${state.pid} is free: the restored process gets its original PID back.`
        : `PID ${state.pid} is free, but taking it needs CAP_CHECKPOINT_RESTORE: the restored process gets a new PID.${newPid}`));

  const badVersion = typeof state.version !== 'number' || state.version > 1;
  if (badVersion) {
    items.push(item('format', 'Checkpoint format', false, `The checkpoint uses state format ${String(state.version)}, newer than this Stasis understands.`, 'Update Stasis.'));
  }
  return { ok: items.every((i) => i.ok), items };
}

/**
 * The restored threads get exactly their saved capability sets, narrowed from the engine's: a set
 * the engine does not hold cannot be given, and a seccomp filter cannot be installed again from
 * outside (a sandboxed program would come back unsandboxed).
 */
function capabilitiesItem(state: ProcessState, host: HostFacts): PreflightItem {
  const missing = new Set<number>();
  for (const th of state.threads) {
    const want = th.caps ? th.caps.permitted | th.caps.effective : 0n;
    for (let cap = 0; cap < 64; cap++) if ((want >> BigInt(cap)) & 1n && !((host.capEff >> BigInt(cap)) & 1n)) missing.add(cap);
  }
  const sandboxed = state.threads.filter((th) => (th.seccomp ?? 0) !== 0);
  if (sandboxed.length) {
    return item('capabilities', 'Capabilities and sandbox', false,
      `${sandboxed.length === state.threads.length ? 'The process' : `${sandboxed.length} of its threads`} ran under seccomp (${sandboxed[0]!.seccomp === 1 ? 'strict mode' : 'a filter'}), which Stasis cannot install again: it would come back without its sandbox.`,
      'Restore it with CRIU, or checkpoint the program before it enables its seccomp sandbox.');
  }
  if (missing.size) {
    return item('capabilities', 'Capabilities and sandbox', false,
      `The process held capabilities Stasis does not have (numbers ${[...missing].sort((a, b) => a - b).join(', ')}); they cannot be given back.`,
      'Run the restore as root (or with those capabilities).');
  }
  const narrowed = state.threads.some((th) => th.caps && th.caps.effective !== host.capEff);
  return item('capabilities', 'Capabilities and sandbox', true,
    !state.threads[0]?.caps ? 'Capabilities were not saved in this checkpoint (an older one): the process gets Stasis\'s own.'
      : narrowed ? 'Each thread gets its saved capability sets (narrower than Stasis\'s own), no_new_privs as it was.' : 'Each thread gets its saved capability sets.');
}

/** File locks are taken again without waiting: one of another kind, or one someone holds now, is refused. */
function locksItem(state: ProcessState): PreflightItem {
  const planned = plannedLocks(state);
  const label = 'File locks';
  const odd = planned.filter((p) => p.lock.kind === 'lease' || p.lock.kind === 'other');
  if (odd.length) {
    return item('file-locks', label, false,
      `${odd.map((p) => `fd ${p.fd.fd} (${p.fd.target}) holds a ${p.lock.name}`).join('; ')}: Stasis cannot take it again, and the process would run without it.`,
      'Checkpoint the program when it holds no file lease.');
  }
  const busy = lockConflicts(state);
  if (busy.length) {
    return item('file-locks', label, false,
      `${busy.map((b) => `the ${describeLock(b.lock)} on ${b.fd.target} (fd ${b.fd.fd}) is held now by ${b.holder.pid > 0 ? `process ${b.holder.pid}` : 'another open file'} (${describeLock(b.holder)})`).join('; ')}: the process cannot get it back, and must not run without it.`,
      `End the process holding ${busy.length > 1 ? 'them' : 'it'} (the original, if it still runs), then restore again.`);
  }
  return item('file-locks', label, true, planned.length === 0 ? 'No file locks held.'
    : `${planned.length} file lock${planned.length > 1 ? 's' : ''} (${planned.map((p) => `${describeLock(p.lock)} on ${p.fd.target}`).join('; ')}) taken again.`);
}

function onlineCpus(): number[] | null {
  try { return parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8')); } catch { return null; }
}

/** A thread pinned to CPUs this machine lacks would run on others (some of them) or not start (none). */
function affinityItem(state: ProcessState, online: number[] | null = onlineCpus()): PreflightItem {
  const label = 'CPU affinity';
  const pinned = state.threads.filter((t) => t.sched && t.sched.affinity !== '');
  if (!pinned.length || !online) {
    return item('cpu-affinity', label, true, pinned.length ? 'The CPUs of this machine are unknown; each thread gets its saved CPU affinity.'
      : state.threads.some((t) => t.sched) ? 'No thread was pinned to some CPUs: they run on any, as before.' : 'Not saved in this checkpoint (an older one): the threads may run on any CPU.');
  }
  const here = new Set(online);
  const missing = pinned.map((t) => ({ tid: t.tid, lacks: cpusOf(t.sched!.affinity).filter((c) => !here.has(c)) })).filter((x) => x.lacks.length);
  return item('cpu-affinity', label, missing.length === 0,
    missing.length === 0 ? 'Each thread gets its saved CPU affinity, scheduling policy, nice value and I/O priority.'
      : `Thread(s) ${missing.map((m) => `${m.tid} (CPUs ${m.lacks.slice(0, 8).join(', ')}${m.lacks.length > 8 ? ', ...' : ''})`).join('; ')} were allowed on CPUs this machine does not have online (${online.length} CPUs: ${online.length > 1 ? `0-${online.length - 1}` : '0'}): they would run elsewhere than the program chose.`,
    'Restore on a machine with those CPUs online (or bring them online: /sys/devices/system/cpu/cpuN/online).');
}
