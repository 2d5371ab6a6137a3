/**
 * Looking inside checkpoints: `stasis mem ID ADDR [LEN]` (hexdump, or --raw bytes), `stasis
 * inspect ID` (the saved process state) and `stasis grep PATTERN [IDS...|--process T]` (search
 * memory across checkpoints, hits streamed as they are found). Each calls one handler of
 * shared/contract/inspect.ts; --json prints that handler's output.
 */
import { resolve } from 'node:path';
import { defineCommand } from '../command';
import { StasisError } from '../../../shared/errors';
import { formatBytes } from '../../../shared/format';
import { hexdump, parseAddress } from '../../../shared/hexdump';
import type { GrepResultData, MemResult, ProcessDetailsData } from '../../../shared/contract/inspect';
import { MEM_INLINE_MAX } from '../../../shared/contract/inspect';
import { checkpointId } from './store-ids';

const SOURCE_TEXT: Record<string, string> = {
  zero: 'saved as zeros',
  file: 'never modified: read from the mapped file now',
  'not-present': 'never touched (the process read zeros): not saved',
  unavailable: 'not saved and not recoverable: shown as zeros',
};

function wholeNumber(v: string, what: string, min = 0): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) && !/^0x[0-9a-f]+$/i.test(v.trim())) throw new StasisError('INVALID_INPUT', `${what} "${v}" is not a whole number.`);
  if (!Number.isSafeInteger(n) || n < min) throw new StasisError('INVALID_INPUT', `${what} ${v} must be a whole number of at least ${min}.`);
  return n;
}

function formatMem(r: MemResult): string[] {
  const lines: string[] = [];
  const m = r.mappings.map((x) => `${x.start}-${x.end} ${x.perms} ${x.path || `[${x.kind}]`}`);
  lines.push(`# checkpoint ${r.checkpointId}, ${r.length} bytes at ${r.address} in ${m.join(', ')}`);
  for (const x of r.ranges) if (x.source !== 'saved') lines.push(`# ${x.start}-${x.end}: ${SOURCE_TEXT[x.source]}${x.note ? ` (${x.note})` : ''}`);
  if (r.output) lines.push(`Wrote ${r.length} bytes to ${r.output}.`);
  else if (r.data) lines.push(...hexdump(BigInt(r.address), Buffer.from(r.data, 'hex')));
  return lines;
}

function formatDetails(d: ProcessDetailsData): string[] {
  const out: string[] = [
    `Checkpoint ${d.checkpointId}: pid ${d.pid} (${d.comm}), parent ${d.ppid}, group ${d.pgid}, session ${d.sid}${d.stopped ? ', stopped' : ''}`,
    `Executable: ${d.exe}`,
    `Command line: ${d.cmdline.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}`,
    `Credentials: uid ${d.credentials.uid.join('/')} gid ${d.credentials.gid.join('/')} (real/effective/saved/fs)`,
    `Cwd: ${d.cwd}   root: ${d.root}   umask: ${d.umask}   kernel: ${d.kernel}`,
    '',
    `Threads (${d.threads.length}):`,
    ...d.threads.map((t) => `  ${t.tid}: rip ${t.rip} rsp ${t.rsp} fs_base ${t.fsBase}${t.inSyscall >= 0 ? ` in syscall ${t.inSyscall}` : ''}${t.blocked.length ? `; blocked ${t.blocked.join(' ')}` : ''}${t.pending.length ? `; pending ${t.pending.join(' ')}` : ''}`),
    '',
    `Mappings (${d.mappings.length}):`,
    ...d.mappings.map((m) => `  ${m.start.padStart(14)}-${m.end.padEnd(14)} ${m.perms} ${m.offset.padStart(10)} ${m.path || `[${m.kind}]`}${m.deleted ? ' (deleted)' : ''}`),
    '',
    `Descriptors (${d.fds.length}):`,
    ...d.fds.map((f) => `  ${String(f.fd).padStart(4)} ${f.kind.padEnd(12)} ${f.target}  flags ${f.flags} pos ${f.pos}${f.cloexec ? ' cloexec' : ''}${f.sharesWith !== undefined ? ` (same file as fd ${f.sharesWith})` : ''}`),
    ...(d.sockets.length ? ['', `Sockets (${d.sockets.length}):`, ...d.sockets.map((s) => `  fd ${s.fd} inode ${s.inode}: ${s.description}`)] : []),
    '',
    'Signals:',
    ...(d.signals.handlers.length ? d.signals.handlers.map((h) => `  ${h.signal.padEnd(10)} ${h.handler} flags ${h.flags}${h.mask.length ? ` mask ${h.mask.join(' ')}` : ''}`) : ['  every handler is the default']),
    `  pending (process): ${d.signals.pending.join(' ') || 'none'}`,
    '',
    'Timers:',
    ...d.timers.itimers.map((t) => `  itimer ${t.which}: value ${t.valueUs} us, interval ${t.intervalUs} us`),
    ...d.timers.posix.map((t) => `  posix timer ${t.id}: clock ${t.clock}, ${t.signal} (${t.notify}), value ${t.valueNs} ns, interval ${t.intervalNs} ns`),
    ...(d.timers.itimers.length + d.timers.posix.length === 0 ? ['  none'] : []),
    '',
    'Rlimits:',
    ...d.rlimits.map((r) => `  ${r.name.padEnd(18)} ${r.cur.padStart(20)} ${r.max.padStart(20)}`),
    '',
    `Environment (${d.environ.length}${d.environMasked ? ', values masked: --show-env shows them' : ''}):`,
    ...d.environ.map((e) => `  ${e}`),
    ...d.warnings.map((w) => `warning: ${w}`),
  ];
  return out;
}

function mappingName(m: { path: string; kind: string; perms: string } | null | undefined): string {
  return m ? `${m.path || `[${m.kind}]`} ${m.perms}` : '(no mapping)';
}

const ids = (list: number[]): string => list.map((i) => `#${i}`).join(',');

function formatGrep(r: GrepResultData): string[] {
  const lines: string[] = [];
  if (r.matches.length === 0) lines.push('No matches.');
  else lines.push(`${r.matches.length} match${r.matches.length === 1 ? '' : 'es'}${r.truncated ? ' (stopped at the limit: --max-matches)' : ''}:`);
  for (const m of r.matches) {
    const span = m.endMapping ? ` -> ${mappingName(m.endMapping)}` : '';
    lines.push(`${m.address} ${mappingName(m.mapping)}${span}: first #${m.first}, last #${m.last}${m.checkpoints.length !== m.last - m.first + 1 ? ` (in ${ids(m.checkpoints)})` : ''}  "${m.text}"`);
    if (m.context) for (const row of hexdump(BigInt(m.context.address), Buffer.from(m.context.bytes, 'hex'))) lines.push(`    ${row}`);
  }
  const s = r.stats;
  const gbps = s.durationMs > 0 ? s.bytesScanned / 1e9 / (s.durationMs / 1000) : 0;
  lines.push(`Searched ${s.checkpoints} checkpoint(s): ${formatBytes(s.logicalBytes)} of memory, ${formatBytes(s.bytesScanned)} scanned (${s.distinctPages} distinct pages, ${s.boundaries} run boundaries) in ${s.durationMs.toFixed(0)} ms (${gbps.toFixed(2)} GB/s).`);
  return lines;
}

export default defineCommand('inspect', (program, cli) => {
  program
    .command('mem')
    .description("print a checkpoint's memory at an address as a hexdump (or raw bytes)")
    .argument('<id>', 'checkpoint id')
    .argument('<address>', 'address: 0x7f..., or hex digits, or a decimal number')
    .argument('[length]', 'bytes to read (default 256)')
    .option('--raw', 'the bytes themselves (to stdout, or to --output)')
    .option('-o, --output <file>', 'write the raw bytes to this file (any length)')
    .action(async (idArg: string, addrArg: string, lenArg: string | undefined, o: { raw?: boolean; output?: string }) => {
      const address = parseAddress(addrArg);
      if (address === null) throw new StasisError('INVALID_INPUT', `"${addrArg}" is not an address; give it in hex (0x7f0000001000) or decimal.`);
      const length = lenArg === undefined ? 256 : wholeNumber(lenArg, 'The length', 1);
      if (o.output && !o.raw) throw new StasisError('INVALID_INPUT', '--output writes raw bytes; add --raw.');
      const r = await cli.call('inspect.mem', { id: checkpointId(idArg), address: `0x${address.toString(16)}`, length, ...(o.output ? { output: resolve(o.output) } : {}) });
      if (o.raw && !o.output && !cli.json()) {
        if (length > MEM_INLINE_MAX) throw new StasisError('INVALID_INPUT', `Give --output FILE for more than ${MEM_INLINE_MAX} raw bytes.`);
        process.stdout.write(Buffer.from(r.data ?? '', 'hex'));
        return;
      }
      cli.print(r, formatMem);
    });

  program
    .command('inspect')
    .description('show what a checkpoint saved of its process: threads, registers, mappings, descriptors, signals, timers, limits, environment')
    .argument('<id>', 'checkpoint id')
    .option('--show-env', 'show environment values (masked by default: they often hold secrets)')
    .action(async (idArg: string, o: { showEnv?: boolean }) => {
      cli.print(await cli.call('inspect.details', { id: checkpointId(idArg), showEnv: o.showEnv === true }), formatDetails);
    });

  program
    .command('grep')
    .description('search checkpoint memory for text, hex bytes or a regex; says in which checkpoints each match is')
    .argument('<pattern>', 'text (UTF-8), hex bytes with --hex, or a regular expression with --regex')
    .argument('[ids...]', 'checkpoint ids (or use --process)')
    .option('--process <target>', 'every checkpoint of this process (target id, as `stasis list` shows)')
    .option('-E, --regex', 'PATTERN is a JavaScript regular expression over the bytes')
    .option('--hex', 'PATTERN is hex bytes, e.g. "de ad be ef"')
    .option('-i, --ignore-case', 'ignore ASCII case')
    .option('-C, --context <bytes>', 'bytes of context shown around each match (default 16)')
    .option('--max-matches <n>', 'stop after this many distinct matches (default 1000)')
    .option('--max-length <bytes>', 'longest regex match still found across page boundaries (default 256)')
    .action(async (pattern: string, idArgs: string[], o: { process?: string; regex?: boolean; hex?: boolean; ignoreCase?: boolean; context?: string; maxMatches?: string; maxLength?: string }) => {
      if (idArgs.length > 0 && o.process !== undefined) throw new StasisError('INVALID_INPUT', 'Give checkpoint ids or --process, not both.');
      if (idArgs.length === 0 && o.process === undefined) throw new StasisError('INVALID_INPUT', 'Give the checkpoint ids to search, or --process TARGET for all checkpoints of a process.');
      const input = {
        pattern,
        ...(o.process !== undefined ? { targetId: wholeNumber(o.process, 'The process (target id)', 1) } : { ids: idArgs.map(checkpointId) }),
        ...(o.regex ? { regex: true } : {}), ...(o.hex ? { hex: true } : {}), ...(o.ignoreCase ? { ignoreCase: true } : {}),
        ...(o.context !== undefined ? { context: wholeNumber(o.context, 'The context') } : {}),
        ...(o.maxMatches !== undefined ? { maxMatches: wholeNumber(o.maxMatches, 'The match limit', 1) } : {}),
        ...(o.maxLength !== undefined ? { maxMatchLength: wholeNumber(o.maxLength, 'The longest match length', 1) } : {}),
      };
      // Text mode streams each place as it is found, then prints the merged matches.
      const stream = !cli.json();
      const r = await cli.call('inspect.grep', input, stream ? {
        onEvent: (event, payload) => {
          if (event !== 'inspect.hit') return;
          const h = payload as { address: string; text: string; checkpoints: number[]; mapping: { path: string; kind: string; perms: string } | null };
          if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
          process.stdout.write(`found ${h.address} ${mappingName(h.mapping)} in ${ids(h.checkpoints)}: "${h.text}"\n`);
        },
      } : undefined);
      cli.print(r, formatGrep);
      if (r.matches.length === 0) cli.setExitCode(1); // like grep: 1 when nothing matched
    });
});
