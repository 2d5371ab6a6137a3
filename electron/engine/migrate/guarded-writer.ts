/**
 * A FrameWriter for a migration that a user may cancel and watch: once the signal is aborted it
 * refuses every frame that would carry the migration further (stream data, pre-flight, prepare,
 * restore), so migrate() fails at that point and takes its own way out: the source resumes
 * untouched and the destination is told to discard ('abort' still goes through). 'done' also goes
 * through: once the destination restored the process and the source killed its own, the session
 * must be finished, never dropped. It also reports each round's bytes as they are written.
 */
import { StasisError } from '../../../shared/errors';
import { FrameWriter } from './wire';
import type { Writable } from 'node:stream';

export interface RoundBytes {
  /** 1-based round number (one announced stream or offer per round). */
  round: number;
  final: boolean;
  done: number;
  total: number;
}

const ALWAYS = new Set(['abort', 'done']);

export class GuardedWriter extends FrameWriter {
  private round = 0;
  private final = false;
  private done = 0;
  private total = 0;

  constructor(dst: Writable, private readonly signal?: AbortSignal, private readonly onBytes?: (p: RoundBytes) => void) {
    super(dst);
  }

  private check(): void {
    if (this.signal?.aborted) throw new StasisError('CANCELLED', 'cancelled by the user');
  }

  override send(msg: { t: string } & Record<string, unknown>): Promise<void> {
    if (!ALWAYS.has(msg.t)) this.check();
    // A tree's round sent member by member (migrate/tree-source.ts) is one round: its later members say member > 0.
    if (msg.t === 'stream' && typeof msg.member === 'number' && msg.member > 0) {
      this.total += typeof msg.bytes === 'number' ? msg.bytes : 0;
    } else if (msg.t === 'stream' || msg.t === 'offer') {
      this.round++;
      this.final = msg.final === true;
      this.done = 0;
      // An offer's total is at most its head, its hashes and every page (those the destination holds stay home).
      const offered = typeof msg.headBytes === 'number' && typeof msg.pages === 'number' ? msg.headBytes + msg.pages * (32 + 4096) : 0;
      this.total = msg.t === 'stream' ? (typeof msg.bytes === 'number' ? msg.bytes : 0) : offered;
    }
    return super.send(msg);
  }

  protected override async dataFrame(chunk: Buffer, settled: boolean): Promise<void> {
    this.check();
    await super.dataFrame(chunk, settled);
    this.done += chunk.length;
    this.onBytes?.({ round: this.round, final: this.final, done: this.done, total: this.total });
  }
}
