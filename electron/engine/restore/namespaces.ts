/**
 * Part of restore step "fs state": a process that had its own UTS namespace gets a new one with
 * its host and domain names (unshare needs CAP_SYS_ADMIN, which the engine has as root). Every
 * other namespace of its own is refused by the pre-flight (state/namespaces.ts).
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { NR } from './sysno';

const CLONE_NEWUTS = 0x04000000n;

export function restoreUtsNamespace(r: Remote, state: Pick<ProcessState, 'namespaces'>): void {
  const ns = state.namespaces;
  if (!ns?.kinds.includes('uts')) return;
  if (!ns.uts) throw new StasisError('UNSUPPORTED', 'The process ran in a UTS namespace of its own whose names the checkpoint lacks: take a new checkpoint.');
  r.call(NR.unshare, [CLONE_NEWUTS], 'unshare(CLONE_NEWUTS) (the process had its own host name)');
  r.resetScratch();
  const host = Buffer.from(ns.uts.nodename);
  r.call(NR.sethostname, [r.put(host), BigInt(host.length)], `sethostname(${ns.uts.nodename})`);
  const dom = Buffer.from(ns.uts.domainname);
  r.call(NR.setdomainname, [r.put(dom), BigInt(dom.length)], `setdomainname(${ns.uts.domainname})`);
}
