/**
 * The time a checkpoint's timers were read, and how a timer is armed again after the time the
 * process spent checkpointed. Wall-clock timers (CLOCK_REALTIME, MONOTONIC, BOOTTIME and their
 * alarm and TAI forms) kept running while the process was gone: a timer due 100 s after the
 * checkpoint is due 100 s after it still, not 100 s after the restore (a program measuring its own
 * deadline with clock_gettime would see time run backwards). CPU-time timers (ITIMER_VIRTUAL,
 * ITIMER_PROF, CPU clocks) stood still with the process and come back as they were.
 */
import { readFileSync } from 'node:fs';

export interface TimerClock {
  /** CLOCK_MONOTONIC at the read, ns (node's hrtime is that clock). */
  monotonicNs: bigint;
  /** CLOCK_REALTIME at the read, ns (ms precision). */
  realtimeNs: bigint;
  /** /proc/sys/kernel/random/boot_id: CLOCK_MONOTONIC compares only within one boot. */
  bootId: string;
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

export function timerClockNow(): TimerClock {
  return { monotonicNs: process.hrtime.bigint(), realtimeNs: BigInt(Date.now()) * 1_000_000n, bootId: bootId() };
}

/**
 * Nanoseconds since `then` (0 when unknown: older checkpoints restore timers as they did). Within
 * one boot by the monotonic clock (immune to clock changes); across boots or machines by the
 * realtime clock, never negative.
 */
export function elapsedSince(then: TimerClock | undefined, now: TimerClock = timerClockNow()): bigint {
  if (!then) return 0n;
  const d = then.bootId !== '' && then.bootId === now.bootId ? now.monotonicNs - then.monotonicNs : now.realtimeNs - then.realtimeNs;
  return d > 0n ? d : 0n;
}

/** Clock ids whose time passes while the process is not running (see above). */
const WALL_CLOCKS = new Set([0, 1, 7, 8, 9, 11]);
export function isWallClock(clockid: number): boolean {
  return WALL_CLOCKS.has(clockid);
}

/**
 * A timer with `valueNs` left and `intervalNs` period, `elapsedNs` later: what is left now (0 = a
 * one-shot timer that expired: leave it disarmed) and how many expirations fell in between.
 */
export function timerAfter(valueNs: bigint, intervalNs: bigint, elapsedNs: bigint): { valueNs: bigint; missed: bigint } {
  if (valueNs === 0n || elapsedNs < valueNs) return { valueNs: valueNs === 0n ? 0n : valueNs - elapsedNs, missed: 0n };
  if (intervalNs === 0n) return { valueNs: 0n, missed: 1n };
  const over = elapsedNs - valueNs;
  return { valueNs: intervalNs - (over % intervalNs), missed: over / intervalNs + 1n };
}
