/**
 * Time as the scheduler sees it. Injectable so tests can jump hours ahead (suspend, downtime)
 * without sleeping; the real loop uses `systemClock`. Owns no timers.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private t: number) {}
  now(): number {
    return this.t;
  }
  set(t: number): void {
    this.t = t;
  }
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}
