/**
 * Which Electron IPC calls are in flight, by (sender, renderer-chosen id), so a cancel message can
 * abort the right one. Owns only the bookkeeping: no Electron import, no engine access; an id from
 * the renderer is a lookup key and never anything else.
 */
export interface TrackedCall {
  signal: AbortSignal;
  end(): void;
}

const MAX_ID = 64;

export class CallCancels {
  private readonly inflight = new Map<string, AbortController>();

  private key(senderId: number, callId: unknown): string | null {
    return typeof callId === 'string' && callId.length > 0 && callId.length <= MAX_ID ? `${senderId}\u0000${callId}` : null;
  }

  /** A call without a usable id still gets a signal; it just cannot be cancelled by message. */
  begin(senderId: number, callId: unknown): TrackedCall {
    const controller = new AbortController();
    const key = this.key(senderId, callId);
    // An id reused while its first call runs keeps the first one cancellable, not the newer.
    const tracked = key !== null && !this.inflight.has(key);
    if (tracked) this.inflight.set(key, controller);
    return {
      signal: controller.signal,
      end: () => { if (tracked && this.inflight.get(key) === controller) this.inflight.delete(key); },
    };
  }

  /** Another window's ids are a different namespace: a sender can cancel only its own calls. */
  cancel(senderId: number, callId: unknown): boolean {
    const key = this.key(senderId, callId);
    const c = key === null ? undefined : this.inflight.get(key);
    if (!c) return false;
    c.abort();
    return true;
  }

  get size(): number { return this.inflight.size; }
}
