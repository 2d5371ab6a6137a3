/**
 * /proc/PID/maps and /proc/PID/smaps: one entry per mapping, with VmFlags and page counts from
 * smaps. Pure parsing plus one read; never touches the process otherwise.
 *
 *   readMaps(pid) -> MapEntry[]          readSmaps(pid) -> MapEntry[] (with vmFlags, rssKb, anonKb)
 */
import { readFileSync } from 'node:fs';

export interface MapEntry {
  start: bigint;
  end: bigint;
  perms: string;
  offset: bigint;
  dev: string;
  inode: number;
  /** Path or special name ("[heap]", "[vdso]"...); "" for anonymous; " (deleted)" removed. */
  path: string;
  deleted: boolean;
  vmFlags: string[];
  rssKb?: number;
  anonKb?: number;
  swapKb?: number;
}

const lineRe = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$/;

export function parseMapLine(line: string): MapEntry | null {
  const m = lineRe.exec(line);
  if (!m) return null;
  let path = m[7] ?? '';
  let deleted = false;
  if (path.endsWith(' (deleted)')) {
    path = path.slice(0, -' (deleted)'.length);
    deleted = true;
  }
  return {
    start: BigInt(`0x${m[1]}`),
    end: BigInt(`0x${m[2]}`),
    perms: m[3]!,
    offset: BigInt(`0x${m[4]}`),
    dev: m[5]!,
    inode: Number(m[6]),
    path,
    deleted,
    vmFlags: [],
  };
}

export function parseMaps(text: string): MapEntry[] {
  const out: MapEntry[] = [];
  for (const line of text.split('\n')) {
    const e = parseMapLine(line);
    if (e) out.push(e);
  }
  return out;
}

export function readMaps(pid: number): MapEntry[] {
  return parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'));
}

export function parseSmaps(text: string): MapEntry[] {
  const out: MapEntry[] = [];
  let cur: MapEntry | null = null;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const c0 = line.charCodeAt(0);
    const isHex = (c0 >= 48 && c0 <= 57) || (c0 >= 97 && c0 <= 102);
    if (isHex && line.includes('-')) {
      const e = parseMapLine(line);
      if (e) {
        cur = e;
        out.push(e);
        continue;
      }
    }
    if (!cur) continue;
    if (line.startsWith('VmFlags:')) cur.vmFlags = line.slice(8).trim().split(/\s+/).filter(Boolean);
    else if (line.startsWith('Rss:')) cur.rssKb = parseInt(line.slice(4), 10);
    else if (line.startsWith('Anonymous:')) cur.anonKb = parseInt(line.slice(10), 10);
    else if (line.startsWith('Swap:')) cur.swapKb = parseInt(line.slice(5), 10);
  }
  return out;
}

export function readSmaps(pid: number): MapEntry[] {
  return parseSmaps(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
}
