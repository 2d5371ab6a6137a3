/**
 * User names for uids, from /etc/passwd (the local accounts; names from NSS services such as LDAP
 * are not looked up: that would need the C library). Reads one file; never writes, never throws.
 * Cached per file modification time, so a list of hundreds of processes reads it once.
 */
import { readFileSync, statSync } from 'node:fs';

let cache: { file: string; mtimeMs: number; names: Map<number, string> } | null = null;

/** "name:x:uid:gid:..." lines -> uid -> name; the first entry for a uid wins, as getpwuid does. */
export function parsePasswd(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3 || !/^\d+$/.test(f[2]) || !f[0]) continue;
    const uid = Number(f[2]);
    if (!names.has(uid)) names.set(uid, f[0]);
  }
  return names;
}

/** uid -> user name map (empty when the file cannot be read). */
export function userNames(file = '/etc/passwd'): Map<number, string> {
  try {
    const mtimeMs = statSync(file).mtimeMs;
    if (cache && cache.file === file && cache.mtimeMs === mtimeMs) return cache.names;
    cache = { file, mtimeMs, names: parsePasswd(readFileSync(file, 'utf8')) };
    return cache.names;
  } catch {
    return new Map();
  }
}
