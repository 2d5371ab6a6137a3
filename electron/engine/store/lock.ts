/**
 * The store-wide writer lock: one writer (commit, remove, gc, import, reindex) at a time across all
 * processes sharing a store. A row in the index names the holder by pid + start time, so a holder
 * killed with SIGKILL is recognised as gone and its lock taken over. Never taken by readers, and
 * never held across an await (the store is synchronous), with one exception: an import fed from a
 * link (Store.beginImport) holds it until the stream's end, so other writers of the store wait
 * meanwhile (through the same handle they get BUSY).
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { StasisError } from '../../../shared/errors';
import { sleepMs } from '../sleep-sync';


export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 overall
  } catch (_e) {
    return null;
  }
}

const selfStart = processStartTime(process.pid) ?? '0';

export class WriterLock {
  private token: string | null = null;
  constructor(private readonly db: Database.Database) {}

  get held(): boolean {
    return this.token !== null;
  }

  /** Tries once; true when this Store now holds the lock. */
  tryAcquire(): boolean {
    if (this.token) throw new StasisError('BUSY', 'This store handle is already writing (a checkpoint, gc or import is in progress); finish or abort it first.');
    const token = randomBytes(8).toString('hex');
    const got = this.db.transaction(() => {
      const row = this.db.prepare('SELECT pid, start_time FROM writer_lock WHERE id = 1').get() as { pid: number; start_time: string } | undefined;
      if (row && processStartTime(row.pid) === row.start_time) return false;
      this.db.prepare('INSERT OR REPLACE INTO writer_lock(id, pid, start_time, token, since) VALUES (1, ?, ?, ?, ?)')
        .run(process.pid, selfStart, token, new Date().toISOString());
      return true;
    }).immediate();
    if (got) this.token = token;
    return got;
  }

  acquire(timeoutMs: number): void {
    const deadline = Date.now() + timeoutMs;
    let wait = 5;
    while (!this.tryAcquire()) {
      if (Date.now() >= deadline) {
        const row = this.db.prepare('SELECT pid, since FROM writer_lock WHERE id = 1').get() as { pid: number; since: string } | undefined;
        throw new StasisError('BUSY', `Another Stasis process (pid ${row?.pid ?? '?'}, since ${row?.since ?? '?'}) is writing to this store; try again when it has finished.`);
      }
      sleepMs(wait);
      wait = Math.min(wait * 2, 100);
    }
  }

  release(): void {
    if (!this.token) return;
    const token = this.token;
    this.token = null;
    try {
      this.db.prepare('DELETE FROM writer_lock WHERE id = 1 AND token = ?').run(token);
    } catch (_e) {
      // The database may be closing; a dead holder's row is taken over by the next writer anyway.
    }
  }
}
