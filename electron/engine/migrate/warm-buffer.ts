/**
 * Memory for a migration's last round, faulted in while the process still runs. Inside the freeze
 * a fresh buffer costs a page fault per 4 KiB on first touch (12-33 us each on this VM): for a round
 * of 1.6 MiB, fresh buffers cost more than the export, the copy and the checks on it together
 * (docs/benchmarks.md, "Live migration"). Each side sizes it from the rounds it has seen (the last
 * round is about as large as the one before it) and hands it out once: a round taken again after a
 * retract gets fresh memory, so nothing still queued on the link is overwritten.
 */

/** Never more than this is held ready (a larger last round takes fresh memory, as before). */
export const MAX_WARM = 32 * 2 ** 20;
/** Enough for a last round of 1000 pages (the bench's 1 GiB writing 1% a second leaves 100-400), held before any round sizes it. */
export const MIN_WARM = 4 * 2 ** 20;

export class WarmBuffer {
  private buf: Buffer | null = null;
  private used = false;

  /** Makes at least bytes (clamped to MIN_WARM..MAX_WARM) ready, touching every page now; outside the downtime only. */
  reserve(bytes: number): void {
    if (this.used) return;
    const want = Math.min(MAX_WARM, Math.max(MIN_WARM, Math.ceil(bytes)));
    if (this.buf && this.buf.length >= want) return;
    const b = Buffer.allocUnsafe(want);
    b.fill(0);
    this.buf = b;
  }

  /** The first bytes of the reserved memory, once; null when it is too small, or was taken. */
  take(bytes: number): Buffer | null {
    if (this.used || !this.buf || this.buf.length < bytes) return null;
    this.used = true;
    const b = this.buf.subarray(0, bytes);
    this.buf = null;
    return b;
  }

  /** All of the reserved memory, once (for a caller that learns its size while filling it). */
  takeAll(): Buffer | null {
    return this.buf ? this.take(this.buf.length) : null;
  }
}
