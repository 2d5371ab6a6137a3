/** Hex + ASCII dumps of memory, as `hexdump -C` prints them, shared by the CLI and the renderer. Pure TypeScript. */

export const HEX_ROW = 16;

/** The printable ASCII form of one byte ('.' for anything else). */
export function asciiOf(b: number): string {
  return b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
}

/**
 * One row: "00007f0000001000  73 74 61 73 69 73 00 00  00 00 00 00 00 00 00 00  |stasis..........|".
 * `bytes` may be shorter than a row (the last one); the address is the row's first byte.
 */
export function hexRow(address: bigint, bytes: Uint8Array): string {
  let hex = '';
  let text = '';
  for (let i = 0; i < HEX_ROW; i++) {
    if (i === 8) hex += ' ';
    hex += i < bytes.length ? ` ${bytes[i]!.toString(16).padStart(2, '0')}` : '   ';
    if (i < bytes.length) text += asciiOf(bytes[i]!);
  }
  return `${address.toString(16).padStart(16, '0')} ${hex}  |${text}|`;
}

/** Rows of `bytes` read at `address` (rows start at address, not at a 16-byte boundary). */
export function hexdump(address: bigint, bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (let o = 0; o < bytes.length; o += HEX_ROW) out.push(hexRow(address + BigInt(o), bytes.subarray(o, Math.min(bytes.length, o + HEX_ROW))));
  return out;
}

/** Bytes as text a person can read in one line: printable ASCII kept, others as '.'. */
export function printable(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += asciiOf(b);
  return s;
}

/** "0x7f00..." or "7f00..." (hex) or a decimal address, as a bigint; null when it is neither. */
export function parseAddress(text: string): bigint | null {
  const t = text.trim();
  if (/^0x[0-9a-f]{1,16}$/i.test(t)) return BigInt(t);
  if (/^[0-9]{1,20}$/.test(t)) return BigInt(t);
  if (/^[0-9a-f]{1,16}$/i.test(t)) return BigInt(`0x${t}`);
  return null;
}
