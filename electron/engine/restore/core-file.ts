/**
 * ELF core file writer: turns a checkpoint (ProcessState + materialized pages) into a core file that
 * `gdb EXE FILE` opens with the right registers and memory. Owns the core layout (PT_NOTE with
 * PRSTATUS/PRPSINFO/FPREGSET/X86_XSTATE/AUXV/FILE, one PT_LOAD per mapping). Reads the store and the
 * mapped files; must never touch a process.
 */
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import type { PageRun } from '../store/api';
import type { MappingState, ProcessState } from '../state/process-state';

const NT_PRSTATUS = 1, NT_FPREGSET = 2, NT_PRPSINFO = 3, NT_AUXV = 6, NT_FILE = 0x46494c45, NT_X86_XSTATE = 0x202;
const PT_LOAD = 1, PT_NOTE = 4;
const PF_X = 1, PF_W = 2, PF_R = 4;
const PAGE = 4096;

function note(name: string, type: number, desc: Buffer): Buffer {
  const nameBuf = Buffer.from(name + '\0', 'latin1');
  const namePad = (nameBuf.length + 3) & ~3;
  const descPad = (desc.length + 3) & ~3;
  const b = Buffer.alloc(12 + namePad + descPad);
  b.writeUInt32LE(nameBuf.length, 0);
  b.writeUInt32LE(desc.length, 4);
  b.writeUInt32LE(type, 8);
  nameBuf.copy(b, 12);
  desc.copy(b, 12 + namePad);
  return b;
}

function prstatus(state: ProcessState, tid: number, regs: bigint[], sigmask: bigint, sigpending: bigint): Buffer {
  const b = Buffer.alloc(336);
  b.writeInt32LE(0, 0);
  b.writeBigUInt64LE(BigInt.asUintN(64, sigpending), 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, sigmask), 24);
  b.writeInt32LE(tid, 32);
  b.writeInt32LE(state.ppid, 36);
  b.writeInt32LE(state.pgid, 40);
  b.writeInt32LE(state.sid, 44);
  for (let i = 0; i < 27; i++) b.writeBigUInt64LE(BigInt.asUintN(64, regs[i] ?? 0n), 112 + i * 8);
  b.writeInt32LE(1, 328); // pr_fpvalid
  return b;
}

function prpsinfo(state: ProcessState): Buffer {
  const b = Buffer.alloc(136);
  b.write('S', 1, 'latin1');
  b.writeUInt32LE(state.uid >>> 0, 16);
  b.writeUInt32LE(state.gid >>> 0, 20);
  b.writeInt32LE(state.pid, 24);
  b.writeInt32LE(state.ppid, 28);
  b.writeInt32LE(state.pgid, 32);
  b.writeInt32LE(state.sid, 36);
  Buffer.from(state.comm, 'utf8').subarray(0, 15).copy(b, 40);
  Buffer.from(state.cmdline.join(' '), 'utf8').subarray(0, 79).copy(b, 56);
  return b;
}

function ntFile(maps: MappingState[]): Buffer {
  const files = maps.filter((m) => m.kind === 'file-private' || m.kind === 'file-shared');
  const head = Buffer.alloc(16 + files.length * 24);
  head.writeBigUInt64LE(BigInt(files.length), 0);
  head.writeBigUInt64LE(BigInt(PAGE), 8);
  files.forEach((m, i) => {
    head.writeBigUInt64LE(m.start, 16 + i * 24);
    head.writeBigUInt64LE(m.end, 24 + i * 24);
    head.writeBigUInt64LE(m.offset / BigInt(PAGE), 32 + i * 24);
  });
  return Buffer.concat([head, ...files.map((m) => Buffer.from(m.path + '\0', 'utf8'))]);
}

function auxvBytes(auxv: bigint[]): Buffer {
  const b = Buffer.alloc(auxv.length * 8);
  auxv.forEach((v, i) => b.writeBigUInt64LE(BigInt.asUintN(64, v), i * 8));
  return b;
}

/** Mappings that go into the core as PT_LOAD: everything but [vvar]* (unreadable) and [vsyscall]. */
function dumpable(state: ProcessState): MappingState[] {
  return state.mappings
    .filter((m) => m.kind !== 'vsyscall' && m.kind !== 'vvar' && m.kind !== 'vvar_vclock' && m.start < 0x800000000000n)
    .sort((a, b) => (a.start < b.start ? -1 : 1));
}

export interface CoreSources {
  pages: Iterable<PageRun>;
  /** Bytes for pages the store holds no record of (file-backed, never modified): read from the mapped file. */
  readFile?: (path: string, offset: bigint, length: number) => Buffer | null;
}

export function defaultReadFile(path: string, offset: bigint, length: number): Buffer | null {
  let fd: number;
  try { fd = openSync(path, 'r'); } catch (_e) { return null; }
  try {
    const b = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, b, done, length - done, Number(offset) + done);
      if (n <= 0) break;
      done += n;
    }
    return b;
  } finally { closeSync(fd); }
}

/** Writes the core file; returns its size in bytes (the file is sparse where memory is zero). */
/** End of the last state component XCR0 enables, in the standard (non-compacted, Intel) XSAVE layout. */
function standardXsaveSize(xcr0: bigint): number {
  // [component bit, end offset]: AVX, MPX BNDREGS, BNDCSR, AVX-512 opmask, ZMM_Hi256, Hi16_ZMM, PKRU.
  const ends: [number, number][] = [[2, 832], [3, 1024], [4, 1088], [5, 1152], [6, 1664], [7, 2688], [9, 2696]];
  let size = 576; // legacy area + XSAVE header
  for (const [bit, end] of ends) if ((xcr0 >> BigInt(bit)) & 1n) size = Math.max(size, end);
  return size;
}

export function writeCoreFile(state: ProcessState, src: CoreSources, outPath: string): number {
  const maps = dumpable(state);
  const notes: Buffer[] = [];
  const th = state.threads[0];
  if (!th) throw new Error('the checkpoint has no thread state');
  for (const t of state.threads) {
    notes.push(note('CORE', NT_PRSTATUS, prstatus(state, t.tid, t.regs, t.sigmask, t.sigpending | state.sharedPending)));
    const xs = t.xstate ? Buffer.from(t.xstate, 'base64') : t.fpregs ? Buffer.from(t.fpregs, 'base64') : Buffer.alloc(0);
    if (xs.length >= 512) notes.push(note('CORE', NT_FPREGSET, xs.subarray(0, 512)));
    // gdb sizes .reg-xstate from XCR0 (bytes 464..471) and the standard (Intel) XSAVE layout, which
    // can exceed the kernel's buffer (this AMD CPU packs AVX-512 state into 0x980 bytes, gdb expects
    // 0xa80 and warns about any other size); what lies past the kernel's size is absent
    // (xstate_bv), so it is padded with zeros to exactly gdb's size.
    if (t.xstate && xs.length > 512) {
      const want = standardXsaveSize(xs.readBigUInt64LE(464));
      notes.push(note('LINUX', NT_X86_XSTATE, xs.length < want ? Buffer.concat([xs, Buffer.alloc(want - xs.length)]) : xs));
    }
    if (t === th) {
      notes.push(note('CORE', NT_PRPSINFO, prpsinfo(state)));
      notes.push(note('CORE', NT_AUXV, auxvBytes(state.auxv)));
      notes.push(note('CORE', NT_FILE, ntFile(maps)));
    }
  }
  const noteBlob = Buffer.concat(notes);
  const phnum = 1 + maps.length;
  const headerSize = 64 + 56 * phnum;
  let dataOff = Math.ceil((headerSize + noteBlob.length) / PAGE) * PAGE;
  const segOffsets: number[] = [];
  for (const m of maps) { segOffsets.push(dataOff); dataOff += Number(m.end - m.start); }
  const total = dataOff;

  const hdr = Buffer.alloc(headerSize);
  hdr.write('\x7fELF', 0, 'latin1');
  hdr[4] = 2; hdr[5] = 1; hdr[6] = 1;
  hdr.writeUInt16LE(4, 16); // ET_CORE
  hdr.writeUInt16LE(0x3e, 18);
  hdr.writeUInt32LE(1, 20);
  hdr.writeBigUInt64LE(64n, 32);
  hdr.writeUInt16LE(64, 52);
  hdr.writeUInt16LE(56, 54);
  hdr.writeUInt16LE(phnum, 56);
  let p = 64;
  hdr.writeUInt32LE(PT_NOTE, p);
  hdr.writeBigUInt64LE(BigInt(headerSize), p + 8);
  hdr.writeBigUInt64LE(BigInt(noteBlob.length), p + 32);
  hdr.writeBigUInt64LE(4n, p + 48);
  maps.forEach((m, i) => {
    p = 64 + 56 * (i + 1);
    const flags = (m.perms[0] === 'r' ? PF_R : 0) | (m.perms[1] === 'w' ? PF_W : 0) | (m.perms[2] === 'x' ? PF_X : 0);
    hdr.writeUInt32LE(PT_LOAD, p);
    hdr.writeUInt32LE(flags, p + 4);
    hdr.writeBigUInt64LE(BigInt(segOffsets[i]), p + 8);
    hdr.writeBigUInt64LE(m.start, p + 16);
    hdr.writeBigUInt64LE(m.end - m.start, p + 32);
    hdr.writeBigUInt64LE(m.end - m.start, p + 40);
    hdr.writeBigUInt64LE(BigInt(PAGE), p + 48);
  });

  const fd = openSync(outPath, 'w', 0o600);
  try {
    writeSync(fd, hdr, 0, hdr.length, 0);
    writeSync(fd, noteBlob, 0, noteBlob.length, headerSize);
    ftruncateSync(fd, total);
    // Unmodified file-backed pages are not in the store: take them from the same file and offset.
    const readFile = src.readFile ?? defaultReadFile;
    maps.forEach((m, i) => {
      if (m.kind !== 'file-private' && m.kind !== 'file-shared') return;
      if (m.deleted) return;
      const len = Number(m.end - m.start);
      const data = readFile(m.path, m.offset, len);
      if (data) writeSync(fd, data, 0, data.length, segOffsets[i]);
    });
    const zero = Buffer.alloc(PAGE * 16);
    let mi = 0;
    for (const run of src.pages) {
      let va = run.vaddr;
      const end = run.vaddr + BigInt(run.pages * PAGE);
      while (va < end) {
        while (mi < maps.length && maps[mi].end <= va) mi++;
        if (mi >= maps.length) break;
        const m = maps[mi];
        if (m.start > va) { va = m.start < end ? m.start : end; continue; }
        const stop = m.end < end ? m.end : end;
        const len = Number(stop - va);
        const off = segOffsets[mi] + Number(va - m.start);
        if (run.data) {
          const from = Number(va - run.vaddr);
          writeSync(fd, run.data, from, len, off);
        } else if (m.kind === 'file-private' || m.kind === 'file-shared') {
          for (let done = 0; done < len; done += zero.length) writeSync(fd, zero, 0, Math.min(zero.length, len - done), off + done);
        }
        va = stop;
      }
    }
  } finally {
    closeSync(fd);
  }
  return total;
}
