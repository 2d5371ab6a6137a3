/**
 * Incoming checkpoint streams land in a private spool first and are imported only once complete,
 * so a truncated or damaged stream imports nothing. The spool lives inside the store (0700), so it
 * holds process memory only where the store does and shares its disk; it is removed on every path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StasisError } from '../../../shared/errors';

/** A fresh 0700 directory `.<what>-XXXXXX` inside the store. */
export function spoolDir(storeDir: string, what: string): string {
  fs.mkdirSync(storeDir, { recursive: true, mode: 0o700 });
  return fs.mkdtempSync(path.join(storeDir, `.${what}-`));
}

/** Spools input completely, then imports it with importFile; the spool is removed on every path. */
export async function spoolAndImport(storeDir: string, input: Readable, importFile: (file: string) => Promise<{ ids: number[] }>): Promise<{ ids: number[] }> {
  const dir = spoolDir(storeDir, 'receive');
  try {
    const file = path.join(dir, 'stream');
    try {
      await pipeline(input, fs.createWriteStream(file, { mode: 0o600, flags: 'wx' }));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new StasisError('INVALID_INPUT', `Cannot spool the incoming stream into ${storeDir} (${(e as Error).message}); nothing was imported. Free space there (or choose another --store) and send again.`);
      throw new StasisError('INVALID_INPUT', `The incoming stream broke off (${(e as Error).message}); nothing was imported. Send again.`);
    }
    if (fs.statSync(file).size === 0) throw new StasisError('INVALID_INPUT', 'The incoming stream was empty (did `stasis send` fail on the other end?); nothing was imported.');
    return await importFile(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
