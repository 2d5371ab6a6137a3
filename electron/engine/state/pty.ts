/**
 * A pseudo-terminal pair the checkpointed program made (its /dev/ptmx descriptor): what capture
 * saves of it (capture/ptys.ts) and the ioctls both capture and restore use. Owns only data shapes
 * and numbers (x86_64).
 */

/** On every master descriptor of the pair (FdState.info.pty). */
export interface PtyInfo {
  /** Its /dev/pts number at the checkpoint (the restored pair gets whatever number is free). */
  index: number;
  locked: boolean;
  packet: boolean;
  exclusive: { master: boolean; slave: boolean };
  /** struct termios2 of the terminal (44 bytes, hex). */
  termios: string;
  /** struct winsize (8 bytes, hex). */
  winsize: string;
  /** The session whose controlling terminal it is (its leader's PID), 0 for none. */
  session: number;
  /** Its foreground process group, 0 for none. */
  foreground: number;
  /** poll() said POLLHUP on the master: every slave descriptor had been closed. */
  hangup: boolean;
  /** Bytes the master would read next (base64), written by the slave side and already processed by it. */
  toMaster?: string;
  /**
   * Bytes the slave side would read next (base64), already processed by the line discipline. In
   * canonical mode: the lines as they are typed again with input processing off (an end-of-file
   * line with its VEOF), then the unfinished line.
   */
  toSlave?: string;
  /** Canonical mode: the bytes of complete lines among toSlave as FIONREAD counts them (end-of-file marks excluded). */
  toSlaveLines?: number;
  /** What could not be saved, in words: the restore is refused with it. */
  error?: string;
  /** What to do about `error`, when something better than checkpointing again later can be said. */
  fix?: string;
}

export const TIOC = {
  FIONREAD: 0x541b,
  TIOCGPTN: 0x80045430,
  TIOCSPTLCK: 0x40045431,
  TIOCGPTLCK: 0x80045439,
  TIOCGPKT: 0x80045438,
  TIOCPKT: 0x5420,
  TIOCGEXCL: 0x80045440,
  TIOCEXCL: 0x540c,
  TIOCGPTPEER: 0x5441,
  TCGETS2: 0x802c542a,
  TCSETS2: 0x402c542b,
  TIOCGWINSZ: 0x5413,
  TIOCSWINSZ: 0x5414,
  TIOCGSID: 0x5429,
  TIOCGPGRP: 0x540f,
  TIOCSPGRP: 0x5410,
  TIOCSCTTY: 0x540e,
} as const;

export const TERMIOS2_SIZE = 44;
const ICANON = 0x2;
const OPOST = 0x1;

export function isCanonical(termios: Buffer): boolean {
  return (termios.readUInt32LE(12) & ICANON) !== 0;
}

/**
 * The same terminal with output processing off: bytes written to the slave side reach the master
 * as they are (capture and restore put back what the master had still to read this way).
 */
export function withoutOutputProcessing(termios: Buffer): Buffer {
  const t = Buffer.from(termios);
  t.writeUInt32LE(t.readUInt32LE(4) & ~OPOST, 4);
  return t;
}

const V = { ERASE: 2, KILL: 3, EOF: 4, EOL: 11, EOL2: 16 } as const;
const CC = 17;

/** The characters that end a line in canonical mode (0 = disabled). */
export function lineEnds(termios: Buffer): { eof: number; eol: number; eol2: number } {
  return { eof: termios[CC + V.EOF]!, eol: termios[CC + V.EOL]!, eol2: termios[CC + V.EOL2]! };
}

/** Non-canonical, otherwise the same: what waits at the slave side shows as bytes, the unfinished line too. */
export function nonCanonical(termios: Buffer): Buffer {
  const t = Buffer.from(termios);
  t.writeUInt32LE(t.readUInt32LE(12) & ~ICANON, 12);
  return t;
}

/**
 * Canonical with nothing else: no input mapping, echo, signals or extensions, no erase or kill
 * character. Lines written to the master with it wait at the slave side as typed, each ended by
 * its newline, VEOL, VEOL2 or VEOF as before.
 */
export function canonicalReplay(termios: Buffer): Buffer {
  const t = Buffer.from(termios);
  t.writeUInt32LE(0, 0);
  t.writeUInt32LE(ICANON, 12);
  t[CC + V.ERASE] = 0;
  t[CC + V.KILL] = 0;
  return t;
}

/**
 * The same terminal with no input processing, no echo, no signals and non-canonical: bytes written
 * to the master wait at the slave side as they are (used only when the saved mode is
 * non-canonical too, so switching back does not reshape the queue into lines).
 */
export function rawInput(termios: Buffer): Buffer {
  const t = Buffer.from(termios);
  t.writeUInt32LE(0, 0);
  t.writeUInt32LE(0, 12);
  return t;
}

/** /dev/pts/N descriptors: N, else null. */
export function ptsIndex(target: string): number | null {
  const m = /^\/dev\/pts\/(\d+)$/.exec(target);
  return m ? Number(m[1]) : null;
}
