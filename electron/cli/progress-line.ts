/**
 * The engine's progress of a CLI call as one line on a terminal's stderr, rewritten in place
 * ("Checkpoint: 41% (108,000 of 262,144 pages)") and erased when the call ends, so that stdout
 * stays exactly the result. Only for a terminal: piped or redirected stderr gets nothing.
 */
import type { OpProgress } from '../../shared/contract/engine';
import { describeProgress } from '../../shared/format';

export interface ProgressLine {
  /** The HandlerContext emit: shows 'op.progress' events, ignores the rest. */
  emit(event: string, payload: unknown): void;
  /** Erases the line (call once the call has ended, whatever its outcome). */
  end(): void;
}

export function progressLine(out: NodeJS.WriteStream): ProgressLine {
  let shown = false;
  return {
    emit(event, payload) {
      if (event !== 'op.progress') return;
      const { text } = describeProgress(payload as OpProgress);
      out.write(`\r${text.slice(0, Math.max(20, (out.columns || 80) - 1))}\x1b[K`);
      shown = true;
    },
    end() {
      if (shown) out.write('\r\x1b[K');
      shown = false;
    },
  };
}
