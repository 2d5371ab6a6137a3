/**
 * Browser mode's file transfers, which a browser cannot do by path: an export the engine writes
 * into a private slot of the store (<store>/transfer/<id>/<name>) and the browser then downloads
 * once by that id, and an uploaded stream file written to a private temp file there before the
 * engine imports it. Owns that directory only. Never opens a path taken from a request: a download
 * id must match ID_RE and name a slot this module created; file names are chosen here.
 */
import { createReadStream, createWriteStream, mkdirSync, readdirSync, renameSync, rmSync, lstatSync, chmodSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { StasisError } from '../../shared/errors';

/** 32 url-safe characters from 24 random bytes: unguessable, and the only shape a slot name takes. */
const ID_RE = /^[A-Za-z0-9_-]{32}$/;
/** A download not fetched within this time is deleted. */
export const DOWNLOAD_TTL_MS = 10 * 60_000;

export interface DownloadFile {
  path: string;
  filename: string;
  size: number;
  /** Deletes the slot: call when the response ends, whether it completed or not. */
  done(): void;
}

export class Transfers {
  readonly dir: string;

  constructor(storeDir: string) {
    this.dir = join(storeDir, 'transfer');
  }

  private ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
  }

  /** A new empty slot; returns its id and the path the engine is to write `filename` to. */
  newSlot(filename: string): { id: string; path: string } {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(filename)) throw new StasisError('INTERNAL', `Unsafe download file name "${filename}".`);
    this.ensureDir();
    this.sweep();
    const id = randomBytes(24).toString('base64url');
    mkdirSync(join(this.dir, id), { mode: 0o700 });
    return { id, path: join(this.dir, id, filename) };
  }

  /** Deletes a slot that will not be downloaded (the export failed or was cancelled). */
  drop(id: string): void {
    if (ID_RE.test(id)) rmSync(join(this.dir, id), { recursive: true, force: true });
  }

  /**
   * Claims a slot for its one download: renamed away first, so a second request for the same id
   * (or a concurrent one) finds nothing. null when the id is malformed, unknown, used or expired.
   */
  take(id: string): DownloadFile | null {
    if (!ID_RE.test(id)) return null;
    const slot = join(this.dir, id);
    const taken = join(this.dir, `${id}.taken`);
    try { renameSync(slot, taken); } catch { return null; }
    const drop = (): void => rmSync(taken, { recursive: true, force: true });
    try {
      if (Date.now() - lstatSync(taken).mtimeMs > DOWNLOAD_TTL_MS) { drop(); return null; }
      const names = readdirSync(taken);
      const st = names.length === 1 ? lstatSync(join(taken, names[0])) : null;
      if (!st || !st.isFile()) { drop(); return null; }
      return { path: join(taken, names[0]), filename: names[0], size: st.size, done: drop };
    } catch {
      drop();
      return null;
    }
  }

  /** Deletes expired slots, and claimed or upload leftovers of a previous run. */
  sweep(now = Date.now()): void {
    let names: string[];
    try { names = readdirSync(this.dir); } catch { return; }
    for (const name of names) {
      const p = join(this.dir, name);
      try {
        const age = now - lstatSync(p).mtimeMs;
        // Claimed downloads and uploads are in use until their request ends; only a crash leaves them.
        const inUse = name.endsWith('.taken') || name.startsWith('upload-');
        if (age > (inUse ? 60 * 60_000 : DOWNLOAD_TTL_MS)) rmSync(p, { recursive: true, force: true });
      } catch { /* removed meanwhile */ }
    }
  }

  /**
   * Streams an upload to a new private file (0600, never an existing one) and returns its path;
   * more than maxBytes fails with 413 semantics (TOO_LARGE) and leaves nothing behind.
   */
  async receive(body: Readable, maxBytes: number, signal?: AbortSignal): Promise<string> {
    this.ensureDir();
    this.sweep();
    const path = join(this.dir, `upload-${randomBytes(24).toString('base64url')}.stasis`);
    let size = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > maxBytes) cb(new UploadTooLarge(maxBytes));
        else cb(null, chunk);
      },
    });
    try {
      await pipeline(body, limit, createWriteStream(path, { flags: 'wx', mode: 0o600 }), ...(signal ? [{ signal }] as const : []));
    } catch (err) {
      rmSync(path, { force: true });
      throw err;
    }
    return path;
  }

  remove(path: string): void {
    if (path.startsWith(this.dir + '/')) rmSync(path, { force: true });
  }

  read(file: DownloadFile): Readable {
    return createReadStream(file.path);
  }
}

export class UploadTooLarge extends Error {
  constructor(readonly maxBytes: number) { super(`The upload is larger than ${maxBytes} bytes.`); }
}

/** The name a download gets: what it is and which checkpoint, nothing from the request. */
export function exportFilename(id: number, kind: 'core' | 'one' | 'flattened' | 'chain'): string {
  return kind === 'core' ? `stasis-${id}.core` : `stasis-${id}-${kind}.stasis`;
}
