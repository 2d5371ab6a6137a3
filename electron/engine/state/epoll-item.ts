/**
 * One line of an epoll descriptor's fdinfo, as capture saved it (FdState.info.items), read by
 * capture and restore alike: "tfd: 5 events: 19 data: 5  pos:0 ino:1a sdev:f" -> its fields (ino null when the line has none).
 */
export function parseEpollItem(line: string): { tfd: number; events: number; data: bigint; ino: number | null } | null {
  const m = /^\s*(?:tfd:)?\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)/i.exec(line);
  if (!m) return null;
  const ino = /\bino:\s*([0-9a-f]+)/i.exec(line);
  return { tfd: Number(m[1]), events: parseInt(m[2]!, 16), data: BigInt('0x' + m[3]), ino: ino ? parseInt(ino[1]!, 16) : null };
}
