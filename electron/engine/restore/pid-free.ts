/**
 * Whether a restore can give a process its old PID (clone3 with set_tid): who may take one, who
 * holds it now, and a short wait for holders that are only zombies.
 */
import { existsSync, readFileSync } from 'node:fs';
import { sleepMs } from '../sleep-sync';
import { CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN, hasCap, hostFacts, type HostFacts } from './host-facts';

const REAP_WAIT_MS = 1000;

/** clone3 with set_tid needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN); h: this machine's facts, or another's (a pre-flight for it). */
export function mayTakePids(h: HostFacts = hostFacts()): boolean {
  return h.euid === 0 || hasCap(h, CAP_CHECKPOINT_RESTORE) || hasCap(h, CAP_SYS_ADMIN);
}

/** True when the PID can be taken now (after waiting a moment for a zombie holding it to be reaped). */
export function canTakePid(pid: number): boolean {
  return mayTakePids() && afterReaping([pid]).length === 0;
}

/** Who holds a PID now, for a refusal the user can act on ("sleep, a zombie its parent 1 has not reaped"). */
export function pidHolder(pid: number): string {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
    const [state, ppid] = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return state === 'Z' ? `${comm}, a zombie its parent ${ppid} has not reaped yet` : `${comm}, running`;
  } catch {
    return 'a process that has just ended';
  }
}

function zombieOrGone(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st[st.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true;
  }
}

/**
 * The PIDs still held after giving zombies a moment to be reaped. "Kill the original, restore it"
 * is the usual order, and the killed processes stay zombies until their parent (often init, for a
 * tree whose session ended) reaps them: refusing (or taking a new PID) then would send the user
 * round again for nothing. Only while every holder is a zombie (a running one does not go by
 * itself), and not for long.
 */
export function afterReaping(pids: number[]): number[] {
  const held = (): number[] => pids.filter((pid) => existsSync(`/proc/${pid}`));
  let busy = held();
  for (let waited = 0; waited < REAP_WAIT_MS && busy.length > 0 && busy.every(zombieOrGone); waited += 10) {
    sleepMs(10);
    busy = held();
  }
  return busy;
}
