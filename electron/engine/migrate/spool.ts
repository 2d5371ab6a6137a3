/**
 * The receiver's resume record of an unfinished transfer, in a private directory of the store keyed
 * by the transfer (STORE/.sync/<key>/). A receiver importing as the pages arrive writes each page
 * once, into its segment; when the transfer breaks off, that segment is kept in the store with no
 * checkpoint in it (StreamImport.salvage) and its file id is listed here (`kept`), so the resend
 * finds those pages in the store, checks each against its hash, and asks only for the rest. A
 * receiver that rebuilds a stream file instead (no streamed import) keeps the pages that fully
 * arrived in `pages`, an append-only log of 32-byte hash + 4096-byte page. Neither is trusted: on
 * open every log entry is checked against its hash and the log is cut at the first bad or partial
 * one (a crash mid-write, a damaged disk); a kept segment with a damaged page is not used at all.
 * The spool is removed once its transfer imported, on a full disk, and after a week unused (kept
 * segments no checkpoint uses are gc's).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashPage } from '../store/hash';

const HASH = 32;
const PAGE = 4096;
const ENTRY = HASH + PAGE;
const STALE_MS = 7 * 24 * 3600 * 1000;

export class PageSpool {
  private readonly at = new Map<string, number>();
  private readonly fd: number;
  private size = 0;

  private constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.fd = fs.openSync(path.join(dir, 'pages'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.load();
  }

  /** The spool of transfer key in the store at storeDir (created empty when there is none); stale spools of other transfers go. */
  static open(storeDir: string, key: string): PageSpool {
    const root = path.join(storeDir, '.sync');
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(root)) {
      if (name === key) continue;
      const p = path.join(root, name);
      // The newest of its files' own times: appending to the log does not touch the directory,
      // and a streamed import's resumes rewrite only `kept`.
      const mtime = (f: string): number => { try { return fs.statSync(path.join(p, f)).mtimeMs; } catch { return 0; } };
      const touched = (): number => Math.max(mtime('pages'), mtime('kept')) || fs.statSync(p).mtimeMs;
      try { if (Date.now() - touched() > STALE_MS) fs.rmSync(p, { recursive: true, force: true }); } catch { /* raced */ }
    }
    return new PageSpool(path.join(root, key));
  }

  private load(): void {
    const total = fs.fstatSync(this.fd).size;
    const buf = Buffer.allocUnsafe(256 * ENTRY);
    let pos = 0;
    outer: while (pos + ENTRY <= total) {
      const n = fs.readSync(this.fd, buf, 0, Math.min(buf.length, Math.floor((total - pos) / ENTRY) * ENTRY), pos);
      if (n < ENTRY) break;
      for (let o = 0; o + ENTRY <= n; o += ENTRY) {
        const h = buf.subarray(o, o + HASH);
        if (!hashPage(buf.subarray(o + HASH, o + ENTRY)).equals(h)) break outer;
        this.at.set(h.toString('latin1'), pos + HASH);
        pos += ENTRY;
      }
    }
    if (pos !== total) fs.ftruncateSync(this.fd, pos);
    this.size = pos;
  }

  get pages(): number { return this.at.size; }

  /** The segments a broken-off import of this transfer kept in the store (StreamImport.salvage). */
  kept(): number[] {
    try {
      const v = JSON.parse(fs.readFileSync(path.join(this.dir, 'kept'), 'utf8')) as unknown;
      return Array.isArray(v) ? v.filter((x): x is number => Number.isSafeInteger(x) && (x as number) > 0) : [];
    } catch {
      // None yet, or a crash mid-write: their pages are still found in the store, only not checked first.
      return [];
    }
  }

  keep(file: number): void {
    const list = [...new Set([...this.kept(), file])];
    fs.writeFileSync(path.join(this.dir, 'kept.tmp'), JSON.stringify(list), { mode: 0o600 });
    fs.renameSync(path.join(this.dir, 'kept.tmp'), path.join(this.dir, 'kept'));
  }

  has(hash: Buffer): boolean { return this.at.has(hash.toString('latin1')); }

  /** The page with this hash into out at offset; false when the spool does not hold it. */
  read(hash: Buffer, out: Buffer, offset: number): boolean {
    const p = this.at.get(hash.toString('latin1'));
    if (p === undefined) return false;
    return fs.readSync(this.fd, out, offset, PAGE, p) === PAGE;
  }

  /** Appends pages (the caller checked each against its hash) with one gathered write, no copy; throws what the disk says (ENOSPC). */
  append(entries: { hash: Buffer; page: Buffer }[]): void {
    if (!entries.length) return;
    const parts = entries.flatMap((e) => [e.hash, e.page]);
    const total = entries.length * ENTRY;
    let off = 0;
    try {
      while (off < total) {
        // A short write (rare) is finished from the bytes it left.
        const rest = off === 0 ? parts : [Buffer.concat(parts).subarray(off)];
        off += fs.writevSync(this.fd, rest, this.size + off);
      }
    } catch (e) {
      // A partial entry would be cut on the next open anyway; cut it now so the size stays whole.
      try { fs.ftruncateSync(this.fd, this.size); } catch { /* the next open cuts it */ }
      throw e;
    }
    for (const [i, e] of entries.entries()) this.at.set(e.hash.toString('latin1'), this.size + i * ENTRY + HASH);
    this.size += total;
  }

  close(): void {
    try { fs.closeSync(this.fd); } catch { /* closed */ }
  }

  /** Closes and deletes the spool (its transfer is done, or cannot be resumed). */
  remove(): void {
    this.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
    try { fs.rmdirSync(path.dirname(this.dir)); } catch { /* other transfers' spools remain */ }
  }
}
