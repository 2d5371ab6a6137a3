/**
 * The restore stub: a tiny static x86_64 ELF the engine writes out itself (no compiler on the user's
 * machine). It only loops on pause(2) so the engine can seize it and rebuild a checkpointed process
 * inside it through injected syscalls. Owns the bytes of that ELF and where it lives on disk; must
 * never run anything itself.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Load address of the stub's one segment: low, so it rarely overlaps anything a checkpoint uses. */
export const STUB_BASE = 0x10000n;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const CODE_OFFSET = EHDR_SIZE + 2 * PHDR_SIZE;

// loop: mov eax, 34 (pause); syscall; jmp loop
const CODE = Buffer.from([0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7]);

/** Address of the stub's `syscall` instruction: the first injected syscall (mapping the trampoline) runs there. */
export const STUB_SYSCALL_ADDR = STUB_BASE + BigInt(CODE_OFFSET + 5);
export const STUB_ENTRY = STUB_BASE + BigInt(CODE_OFFSET);

export function buildStubElf(): Buffer {
  const size = CODE_OFFSET + CODE.length;
  const b = Buffer.alloc(size);
  // ELF header
  b.write('\x7fELF', 0, 'latin1');
  b[4] = 2; // ELFCLASS64
  b[5] = 1; // little endian
  b[6] = 1; // EV_CURRENT
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(0x3e, 18); // EM_X86_64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(STUB_ENTRY, 24);
  b.writeBigUInt64LE(BigInt(EHDR_SIZE), 32); // e_phoff
  b.writeUInt16LE(EHDR_SIZE, 52);
  b.writeUInt16LE(PHDR_SIZE, 54);
  b.writeUInt16LE(2, 56); // e_phnum
  // PT_LOAD R+X covering the whole file
  let p = EHDR_SIZE;
  b.writeUInt32LE(1, p);
  b.writeUInt32LE(5, p + 4);
  b.writeBigUInt64LE(0n, p + 8);
  b.writeBigUInt64LE(STUB_BASE, p + 16);
  b.writeBigUInt64LE(STUB_BASE, p + 24);
  b.writeBigUInt64LE(BigInt(size), p + 32);
  b.writeBigUInt64LE(BigInt(size), p + 40);
  b.writeBigUInt64LE(0x1000n, p + 48);
  // PT_GNU_STACK RW (no executable stack)
  p += PHDR_SIZE;
  b.writeUInt32LE(0x6474e551, p);
  b.writeUInt32LE(6, p + 4);
  b.writeBigUInt64LE(16n, p + 48);
  CODE.copy(b, CODE_OFFSET);
  return b;
}

/**
 * Writes the stub once per content into the temp dir (atomically, mode 0755) and returns its path.
 * Rewrites it when the file there is not byte-identical (someone else's file, or an older stub).
 */
export function stubPath(dir: string = tmpdir()): string {
  dir ||= tmpdir();
  const elf = buildStubElf();
  const tag = createHash('sha256').update(elf).digest('hex').slice(0, 12);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const path = join(dir, `stasis-restore-stub-${uid}-${tag}`);
  if (existsSync(path)) {
    try {
      if (readFileSync(path).equals(elf)) return path;
    } catch (_e) {
      // unreadable: fall through and replace it
    }
  }
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, elf, { mode: 0o755 });
  chmodSync(tmp, 0o755);
  renameSync(tmp, path);
  return path;
}
