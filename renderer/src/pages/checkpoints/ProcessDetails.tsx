/**
 * The Details tab: the process as the checkpoint saved it (inspect.details): identity, command line,
 * credentials, threads and registers, descriptors, sockets, signals, timers, limits, mappings and
 * environment. Environment values arrive masked (KEY=****); Reveal asks the engine again with
 * showEnv, so the values reach this page only when the user asks for them.
 */
import { useState, type ReactNode } from 'react';
import { ErrorNote } from '../../ErrorNote';
import { useEngine } from '../../components/engine';
import { CALL } from '../../components/calls';
import { Busy } from '../../components/Status';
import { plural } from '../../components/format';
import type { ProcessDetails } from '../../components/types';

function Table({ label, head, rows }: { label: string; head: string[]; rows: ReactNode[][] }) {
  if (rows.length === 0) return <p className="muted">None.</p>;
  return (
    <div className="table-wrap details-table">
      <table className="grid" aria-label={label}>
        <thead><tr>{head.map((h) => <th key={h} scope="col">{h}</th>)}</tr></thead>
        <tbody>{rows.map((r, i) => <tr key={i}>{r.map((c, j) => <td key={j}>{c}</td>)}</tr>)}</tbody>
      </table>
    </div>
  );
}

const list = (xs: string[]): string => (xs.length ? xs.join(' ') : '—');
/** uid/gid as the kernel keeps them: real, effective, saved, filesystem (older checkpoints kept one). */
const ids = (what: string, xs: number[]): string => (xs.length === 4 ? `${what} ${xs.join(' / ')} (real / effective / saved / fs)` : `${what} ${xs.join(' ')}`);

export function ProcessDetailsPanel({ checkpointId }: { checkpointId: number }) {
  const [showEnv, setShowEnv] = useState(false);
  const [details, reload] = useEngine<ProcessDetails>(CALL.details, showEnv ? { id: checkpointId, showEnv: true } : { id: checkpointId });
  const d = details.value;
  if (details.state === 'failed') return <ErrorNote error={details.error} onRetry={reload} />;
  if (!d) return <Busy>Reading the saved process state…</Busy>;
  return (
    <div className="process-details" aria-busy={details.state === 'loading'}>
      {d.warnings.length ? <ul className="warnings">{d.warnings.map((w) => <li key={w}>{w}</li>)}</ul> : null}
      <dl className="facts compact">
        <dt>Process</dt><dd>{d.comm} — PID {d.pid}, parent {d.ppid}, group {d.pgid}, session {d.sid}{d.stopped ? ' (stopped)' : ''}</dd>
        <dt>Program</dt><dd><code>{d.exe}</code></dd>
        <dt>Command line</dt><dd><code data-testid="details-cmdline">{d.cmdline.join(' ')}</code></dd>
        <dt>Working directory</dt><dd><code>{d.cwd}</code>{d.root !== '/' ? <> (root <code>{d.root}</code>)</> : null}</dd>
        <dt>Credentials</dt><dd>{ids('uid', d.credentials.uid)}, {ids('gid', d.credentials.gid)}, umask {d.umask}</dd>
        <dt>Kernel</dt><dd>{d.kernel}</dd>
      </dl>

      <h3>Threads ({d.threads.length})</h3>
      <Table label="Threads" head={['TID', 'rip', 'rsp', 'fs_base', 'In syscall', 'Blocked', 'Pending', 'Registers']} rows={d.threads.map((t) => [
        t.tid, <code key="rip">{t.rip}</code>, <code key="rsp">{t.rsp}</code>, <code key="fs">{t.fsBase}</code>, t.inSyscall >= 0 ? t.inSyscall : '—', list(t.blocked), list(t.pending),
        <details key="regs"><summary>all {Object.keys(t.registers).length}</summary>
          <dl className="regs">{Object.entries(t.registers).map(([k, v]) => <div key={k}><dt>{k}</dt><dd><code>{v}</code></dd></div>)}</dl>
        </details>,
      ])} />

      <h3>File descriptors ({d.fds.length})</h3>
      <Table label="File descriptors" head={['FD', 'Kind', 'Target', 'Flags', 'Position', 'Close on exec']} rows={d.fds.map((f) => [
        f.fd, f.kind, <code key="t" className="wrap">{f.target}{f.sharesWith !== undefined ? ` (same open file as fd ${f.sharesWith})` : ''}</code>, f.flags, f.pos, f.cloexec ? 'yes' : 'no',
      ])} />

      <h3>Sockets ({d.sockets.length})</h3>
      <Table label="Sockets" head={['FD', 'Inode', 'What']} rows={d.sockets.map((s) => [s.fd, s.inode, s.description])} />

      <h3>Signals</h3>
      <p>Pending for the process: {list(d.signals.pending)}</p>
      <Table label="Signal handlers" head={['Signal', 'Handler', 'Flags', 'Mask']} rows={d.signals.handlers.map((h) => [h.signal, <code key="h">{h.handler}</code>, h.flags, list(h.mask)])} />

      <h3>Timers</h3>
      <Table label="Timers" head={['Timer', 'Interval', 'Value', 'Signal / notify']} rows={[
        ...d.timers.itimers.map((t) => [`itimer ${t.which}`, `${t.intervalUs} µs`, `${t.valueUs} µs`, '—']),
        ...d.timers.posix.map((t) => [`POSIX timer ${t.id} (clock ${t.clock})`, `${t.intervalNs} ns`, `${t.valueNs} ns`, `${t.signal} / ${t.notify}${t.overrun ? `, overrun ${t.overrun}` : ''}`]),
      ]} />

      <h3>Resource limits</h3>
      <Table label="Resource limits" head={['Limit', 'Soft', 'Hard']} rows={d.rlimits.map((r) => [r.name, r.cur, r.max])} />

      <h3>Environment ({plural(d.environ.length, 'variable')})</h3>
      <div className="inline-setting">
        <span className="muted">{d.environMasked ? 'Values are hidden: they often hold tokens and passwords.' : 'Values are shown.'}</span>
        <button type="button" className="secondary" aria-pressed={showEnv} onClick={() => setShowEnv((v) => !v)}>{showEnv ? 'Hide values' : 'Reveal values'}</button>
      </div>
      <ul className="env" data-testid="details-env" aria-label="Environment">
        {d.environ.map((kv, i) => <li key={i}><code>{kv}</code></li>)}
      </ul>

      <h3>Mappings ({d.mappings.length})</h3>
      <Table label="Mappings" head={['Start', 'End', 'Perms', 'Offset', 'Kind', 'Path']} rows={d.mappings.map((m) => [
        <code key="s">{m.start}</code>, <code key="e">{m.end}</code>, <code key="p">{m.perms}</code>, <code key="o">{m.offset}</code>, m.kind,
        <span key="path" className="wrap">{m.path}{m.deleted ? ' (deleted)' : ''}</span>,
      ])} />
    </div>
  );
}
