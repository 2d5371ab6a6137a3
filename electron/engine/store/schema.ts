/**
 * The SQLite index: versioned migrations for index.sqlite (checkpoints, targets, page records as
 * extents, segment files, entries) and dedup.sqlite (content hash -> page location). Both are
 * accelerators rebuilt by reindex from the segment files; this module must never hold data that
 * exists nowhere else.
 */
import type Database from 'better-sqlite3';
import { StasisError } from '../../../shared/errors';
import { sleepMs } from '../sleep-sync';

const indexMigrations: string[] = [
  `CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE targets(
     id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, start_time TEXT NOT NULL, exe TEXT NOT NULL,
     cmdline TEXT NOT NULL, name TEXT, created_at TEXT NOT NULL, UNIQUE(pid, start_time, exe));
   CREATE TABLE files(
     id INTEGER PRIMARY KEY, bytes INTEGER NOT NULL, pages INTEGER NOT NULL, live_pages INTEGER);
   CREATE TABLE checkpoints(
     id INTEGER PRIMARY KEY, target_id INTEGER NOT NULL REFERENCES targets(id),
     parent_id INTEGER REFERENCES checkpoints(id), created_at TEXT NOT NULL, label TEXT, notes TEXT,
     pinned INTEGER NOT NULL DEFAULT 0, mode TEXT NOT NULL, dirty_tracking TEXT NOT NULL,
     restored_from INTEGER, stats TEXT NOT NULL, state TEXT NOT NULL,
     def_file INTEGER NOT NULL REFERENCES files(id));
   CREATE INDEX checkpoints_parent ON checkpoints(parent_id);
   CREATE INDEX checkpoints_target ON checkpoints(target_id, id);
   CREATE TABLE extents(
     ckpt INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE, vpn INTEGER NOT NULL,
     count INTEGER NOT NULL, kind INTEGER NOT NULL, file INTEGER REFERENCES files(id), page INTEGER,
     PRIMARY KEY(ckpt, vpn)) WITHOUT ROWID;
   CREATE INDEX extents_file ON extents(file) WHERE file IS NOT NULL;
   CREATE TABLE entries(
     file INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE, ckpt INTEGER NOT NULL, type TEXT NOT NULL,
     PRIMARY KEY(file, ckpt, type)) WITHOUT ROWID;
   CREATE INDEX entries_ckpt ON entries(ckpt);
   CREATE TABLE writer_lock(
     id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, start_time TEXT NOT NULL,
     token TEXT NOT NULL, since TEXT NOT NULL);`,
  // Segment files being written or about to be deleted: the only unindexed files open() may remove.
  `CREATE TABLE pending(file INTEGER PRIMARY KEY);`,
  // Stored block payload bytes per file (less than pages x 4096 when blocks are compressed); NULL for
  // files indexed before compression existed, which are all uncompressed.
  `ALTER TABLE files ADD COLUMN block_bytes INTEGER;`,
  // Tree checkpoints: every member names the tree's root checkpoint and the number of members.
  `ALTER TABLE checkpoints ADD COLUMN tree_root INTEGER;
   ALTER TABLE checkpoints ADD COLUMN tree_size INTEGER;
   CREATE INDEX checkpoints_tree ON checkpoints(tree_root) WHERE tree_root IS NOT NULL;`,
];

const dedupMigrations: string[] = [
  // h: the first 8 bytes of the page's content hash (the full hash is checked in the segment on a hit).
  `CREATE TABLE pages(h INTEGER PRIMARY KEY, file INTEGER NOT NULL, page INTEGER NOT NULL);`,
];

function migrate(db: Database.Database, migrations: string[], what: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > migrations.length) {
    throw new StasisError('UNSUPPORTED', `The store's ${what} is version ${version}, newer than this Stasis understands (${migrations.length}). Upgrade Stasis.`);
  }
  for (let v = version; v < migrations.length; v++) {
    db.transaction(() => {
      // Read again under the write lock: another process opening the same new store may have
      // applied this step since (two openers both saw the old version).
      if ((db.pragma('user_version', { simple: true }) as number) > v) return;
      db.exec(migrations[v]);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

export function configure(db: Database.Database): void {
  useWal(db, 15_000);
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}

/**
 * busy_timeout, then WAL mode. Turning a new database to WAL needs it to itself, and SQLite breaks
 * a race of several new connections for that by failing one at once (SQLITE_BUSY without its busy
 * handler): processes creating one new store together (a daemon and a CLI) got "database is
 * locked". Retried for as long as the busy timeout.
 */
export function useWal(db: Database.Database, busyMs: number): void {
  db.pragma(`busy_timeout = ${busyMs}`);
  untilNotBusy(() => db.pragma('journal_mode = WAL'), busyMs);
}

function untilNotBusy<T>(fn: () => T, ms: number): T {
  const end = Date.now() + ms;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    try {
      return fn();
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if ((code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') || Date.now() > end) throw e;
      sleepMs(wait);
    }
  }
}

export function migrateIndex(db: Database.Database): void {
  migrate(db, indexMigrations, 'index');
}
export function migrateDedup(db: Database.Database): void {
  migrate(db, dedupMigrations, 'dedup table');
}
