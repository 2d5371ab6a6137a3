/**
 * A few bytes of x86-64 code that run a table of system calls in the thread that executes them,
 * then trap (int3): one trip through the tracer for many calls, where single-stepping costs a trip
 * each (~25-30 us here). The table holds 8 u64 per call (nr, six arguments, the result written
 * back) and ends with nr = -1. The restore's trampoline carries it (restore/plan.ts), and capture's
 * injected batches put it in a page of the frozen process for a moment (tracer/inject.ts).
 *   loop: mov rax,[rbx]; cmp rax,-1; je done; mov rdi,[rbx+8]; mov rsi,[rbx+16]; mov rdx,[rbx+24]
 *         mov r10,[rbx+32]; mov r8,[rbx+40]; mov r9,[rbx+48]; syscall; mov [rbx+56],rax
 *         add rbx,64; jmp loop
 *   done: int3
 * Run it with rip at its first byte, rbx at the table and orig_rax -1, by PTRACE_CONT.
 */
export const SYSCALL_LOOP = Buffer.from([
  0x48, 0x8b, 0x03, 0x48, 0x83, 0xf8, 0xff, 0x74, 0x24,
  0x48, 0x8b, 0x7b, 0x08, 0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18,
  0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30,
  0x0f, 0x05, 0x48, 0x89, 0x43, 0x38, 0x48, 0x83, 0xc3, 0x40, 0xeb, 0xd3,
  0xcc,
]);

/** The table for calls (see the module comment). */
export function syscallTable(calls: readonly { nr: number; args?: readonly bigint[] }[]): Buffer {
  const table = Buffer.alloc(calls.length * 64 + 8);
  calls.forEach((c, i) => {
    table.writeBigInt64LE(BigInt(c.nr), i * 64);
    for (let k = 0; k < 6; k++) table.writeBigUInt64LE(BigInt.asUintN(64, c.args?.[k] ?? 0n), i * 64 + 8 + k * 8);
  });
  table.writeBigInt64LE(-1n, calls.length * 64);
  return table;
}

/** Each call's rax (signed: -4095..-1 = -errno) from a table read back after the loop ran. */
export function tableResults(table: Buffer, count: number): bigint[] {
  return Array.from({ length: count }, (_, i) => table.readBigInt64LE(i * 64 + 56));
}
