/**
 * `stasis mem`: bytes of one checkpoint's memory image, returned or written to a file in bounded
 * chunks (a raw dump of a whole mapping need not fit in memory). The file gets mode 0600: it holds
 * process memory.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { Store } from '../store/api';
import { openImage, type ImageRange } from './image';
import type { MappingState } from '../state/process-state';

const FILE_CHUNK = 16 << 20;

export interface MemOptions {
  /** Write the bytes here instead of returning them. */
  output?: string;
  /** Refuse to return more than this many bytes inline. */
  inlineMax: number;
  signal?: AbortSignal;
}

export interface MemRead {
  address: bigint;
  length: number;
  data?: Buffer;
  output?: string;
  ranges: ImageRange[];
  mappings: MappingState[];
}

export function readMemory(store: Store, id: number, address: bigint, length: number, opts: MemOptions): MemRead {
  if (!opts.output && length > opts.inlineMax) {
    throw new StasisError('INVALID_INPUT', `${length} bytes is more than ${opts.inlineMax} to show at once; write them to a file (--raw -o FILE) or read less.`);
  }
  const img = openImage(store, id);
  try {
    if (!opts.output) {
      const r = img.read(address, length);
      return { address, length, data: r.bytes, ranges: r.ranges, mappings: r.mappings };
    }
    // Check the whole range first (a gap fails before anything is written), then copy it in chunks.
    img.read(address, 1);
    img.read(address + BigInt(length - 1), 1);
    const ranges: ImageRange[] = [];
    const mappings: MappingState[] = [];
    const fd = openSync(opts.output, 'w', 0o600);
    try {
      for (let done = 0; done < length; done += FILE_CHUNK) {
        if (opts.signal?.aborted) throw new StasisError('CANCELLED', 'Reading the memory was cancelled; the file is incomplete.');
        const r = img.read(address + BigInt(done), Math.min(FILE_CHUNK, length - done));
        writeSync(fd, r.bytes, 0, r.bytes.length, done);
        for (const x of r.ranges) {
          const last = ranges[ranges.length - 1];
          if (last && last.end === x.start && last.source === x.source && last.note === x.note) last.end = x.end;
          else ranges.push({ ...x });
        }
        for (const m of r.mappings) if (mappings[mappings.length - 1] !== m) mappings.push(m);
      }
    } finally {
      closeSync(fd);
    }
    return { address, length, output: opts.output, ranges, mappings };
  } finally {
    img.close();
  }
}
