/**
 * What `stasis grep` looks for, compiled once into a matcher over raw bytes: a literal (UTF-8
 * text), hex bytes, or a regular expression run over the bytes as latin1 text (one character per
 * byte). Owns only matching; it knows nothing of checkpoints or pages.
 */
import { StasisError } from '../../../shared/errors';

export interface PatternSpec {
  pattern: string;
  /** A JavaScript regular expression over the bytes (each byte one character). */
  regex?: boolean;
  /** The pattern is hex bytes ("de ad be ef", "deadbeef", "\xde\xad"). */
  hex?: boolean;
  ignoreCase?: boolean;
  /**
   * Longest regex match that is still found across a page or mapping boundary (literals: their own
   * length). Default 256, at most 4096.
   */
  maxMatchLength?: number;
}

export interface Matcher {
  /** Matches longer than this are not guaranteed across page boundaries; also the overlap scanned there. */
  readonly maxLength: number;
  /** Calls hit(start, length) for each non-overlapping match in buf[from..to), in order. */
  scan(buf: Buffer, from: number, to: number, hit: (start: number, length: number) => void): void;
}

export const MAX_PATTERN_BYTES = 4096;
const DEFAULT_MAX_MATCH = 256;

export function parseHex(text: string): Buffer {
  const t = text.replace(/\\x/gi, '').replace(/0x/gi, '').replace(/[\s:,-]/g, '');
  if (t.length === 0 || t.length % 2 !== 0 || !/^[0-9a-f]+$/i.test(t)) {
    throw new StasisError('INVALID_INPUT', `"${text}" is not hex bytes; give pairs of hex digits such as "de ad be ef" or "deadbeef".`);
  }
  return Buffer.from(t, 'hex');
}

function escapeRegex(latin1: string): string {
  return latin1.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export function compilePattern(spec: PatternSpec): Matcher {
  if (spec.pattern.length === 0) throw new StasisError('INVALID_INPUT', 'The search pattern is empty; give the text, hex bytes or regular expression to look for.');
  if (spec.hex && spec.regex) throw new StasisError('INVALID_INPUT', 'Give either --hex or --regex, not both.');
  const maxMatch = spec.maxMatchLength ?? DEFAULT_MAX_MATCH;
  if (!Number.isInteger(maxMatch) || maxMatch < 1 || maxMatch > MAX_PATTERN_BYTES) {
    throw new StasisError('INVALID_INPUT', `The longest match length ${maxMatch} must be a whole number from 1 to ${MAX_PATTERN_BYTES}.`);
  }
  if (!spec.regex) {
    const needle = spec.hex ? parseHex(spec.pattern) : Buffer.from(spec.pattern, 'utf8');
    if (needle.length > MAX_PATTERN_BYTES) throw new StasisError('INVALID_INPUT', `The pattern is ${needle.length} bytes; search for at most ${MAX_PATTERN_BYTES} bytes (one page).`);
    if (!spec.ignoreCase || spec.hex) return literal(needle);
    return regex(new RegExp(escapeRegex(needle.toString('latin1')), 'gi'), needle.length);
  }
  let re: RegExp;
  try {
    // Non-ASCII characters of the pattern stand for their UTF-8 bytes, as in the memory they are found in.
    re = new RegExp(Buffer.from(spec.pattern, 'utf8').toString('latin1'), spec.ignoreCase ? 'gi' : 'g');
  } catch (e) {
    throw new StasisError('INVALID_INPUT', `"${spec.pattern}" is not a valid regular expression (${(e as Error).message}).`);
  }
  return regex(re, maxMatch);
}

function literal(needle: Buffer): Matcher {
  return {
    maxLength: needle.length,
    scan(buf, from, to, hit) {
      const view = to === buf.length ? buf : buf.subarray(0, to);
      for (let at = view.indexOf(needle, from); at >= 0; at = view.indexOf(needle, at + needle.length)) hit(at, needle.length);
    },
  };
}

function regex(re: RegExp, maxLength: number): Matcher {
  return {
    maxLength,
    scan(buf, from, to, hit) {
      const text = buf.toString('latin1', 0, to);
      re.lastIndex = from;
      for (let m = re.exec(text); m; m = re.exec(text)) {
        if (m[0].length === 0) { re.lastIndex++; continue; } // an empty match finds nothing
        hit(m.index, m[0].length);
      }
    },
  };
}
