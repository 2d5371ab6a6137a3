/**
 * Calls and events owned by the schedule subsystem: scheduled background checkpoints with retention.
 * Names are "schedules.verb" (calls) and "schedule.noun.verb" (events). Times are ISO 8601 strings,
 * durations milliseconds, sizes bytes. Pure TypeScript (zod only).
 */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';
import { hostPort, pairingTokenSchema } from './transfer';

const hm = z.string().regex(/^\d{1,2}:\d{2}$/, 'a time of day as HH:MM');

export const scheduleTimingSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('interval'), everyMs: z.number().int().min(1000) }),
  z.object({ kind: z.literal('cron'), expr: z.string().min(1) }),
  z.object({ kind: z.literal('manual') }),
]);

export const quietHoursSchema = z.object({ start: hm, end: hm });

const count = z.number().int().nonnegative();
export const retentionSchema = z.object({
  keepLast: count.optional(),
  hourly: count.optional(),
  daily: count.optional(),
  weekly: count.optional(),
  monthly: count.optional(),
  quotaBytes: count.optional(),
});

export const scheduleTargetSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('pid'), pid: z.number().int().positive(), startTime: z.string() }),
  z.object({ kind: z.literal('name'), name: z.string() }),
]);

const iso = z.string();

/** "Also send to": a receiver kept listening (`stasis receive --listen --keep`, or the app's Receive page) and its pairing token. */
export const sendToInputSchema = z.object({ address: hostPort(false), token: pairingTokenSchema }).strict();
export type SendToInput = z.input<typeof sendToInputSchema>;

export const lastSendSchema = z.object({
  result: z.enum(['sending', 'ok', 'failed']),
  /** When it started ('sending') or ended. */
  at: iso,
  /** The newest checkpoint of the schedule it was for, and the destination's id of it once it holds it. */
  checkpointId: z.number().int(),
  remoteId: z.number().int().nullable(),
  /** The newest checkpoint of the schedule the destination confirmed holding; the next send starts after it. */
  sentThrough: z.number().int().nullable(),
  checkpoints: count,
  pagesSent: count,
  /** Bytes this send put on the wire. */
  bytes: count,
  error: z.string().nullable(),
  /** Failed sends in a row; 0 after an ok one. */
  failures: count.default(0),
  /** A failed send: when it is tried again (a run committed before then sends sooner). */
  retryAt: iso.nullable().default(null),
});
export type ScheduleLastSend = z.output<typeof lastSendSchema>;

export const scheduleSchema = z.object({
  id: z.number().int(),
  target: scheduleTargetSchema,
  timing: scheduleTimingSchema,
  fullEvery: count,
  quietHours: quietHoursSchema.nullable(),
  retention: retentionSchema,
  label: z.string().nullable(),
  state: z.enum(['active', 'paused', 'ended']),
  endedReason: z.string().nullable(),
  createdAt: iso,
  nextRunAt: iso.nullable(),
  lastRunAt: iso.nullable(),
  lastResult: z.enum(['ok', 'failed', 'skipped']).nullable(),
  lastError: z.string().nullable(),
  incrementalsSinceFull: count,
  failures: count,
  /** Where each committed checkpoint is also sent; the token is never given back, only its last 4 characters. */
  sendTo: z.object({ address: z.string(), tokenHint: z.string() }).nullable(),
  lastSend: lastSendSchema.nullable(),
});
export type ScheduleInfo = z.output<typeof scheduleSchema>;

export const runSchema = z.object({
  id: z.number().int(),
  scheduleId: z.number().int(),
  startedAt: iso,
  finishedAt: iso,
  result: z.enum(['ok', 'failed', 'skipped']),
  mode: z.enum(['full', 'incremental']).nullable(),
  pid: z.number().int().nullable(),
  checkpointId: z.number().int().nullable(),
  durationMs: z.number().nullable(),
  frozenMs: z.number().nullable(),
  bytes: z.number().nullable(),
  error: z.string().nullable(),
  attempt: z.number().int(),
  missed: count,
  willRetry: z.boolean(),
  pruned: z.array(z.number().int()),
  runnerPid: z.number().int(),
});
export type ScheduleRun = z.output<typeof runSchema>;

export const schedulerHolderSchema = z.object({
  pid: z.number().int(),
  kind: z.enum(['app', 'daemon']),
  since: iso,
  heartbeatAt: iso,
});

const idInput = z.object({ id: z.number().int().positive() }).strict();

export const scheduleCalls = {
  'schedules.list': defineCall({
    description: 'Every schedule of the store with its next run and last result, who runs them (the scheduler lock holder, or nobody), and the global quota.',
    input: z.object({}).strict(),
    output: z.object({
      schedules: z.array(scheduleSchema),
      /** null: no scheduler is running on this store, so nothing runs until the app or `stasis daemon` starts. */
      scheduler: schedulerHolderSchema.nullable(),
      globalQuotaBytes: count.nullable(),
    }),
  }),
  'schedules.add': defineCall({
    description: 'Create a schedule for a running process (by pid) or for a program launched by Stasis (by name); optionally also send each checkpoint to another Stasis.',
    input: z.object({
      /** {pid}: this process until it exits; {name}: a program launched by Stasis, across restarts; {pid, name}: name this running process and follow it by that name. */
      target: z.union([
        z.object({ pid: z.number().int().positive(), name: z.string().min(1) }).strict(),
        z.object({ pid: z.number().int().positive() }).strict(),
        z.object({ name: z.string().min(1) }).strict(),
      ]),
      timing: scheduleTimingSchema,
      fullEvery: count.default(0),
      quietHours: quietHoursSchema.nullable().default(null),
      retention: retentionSchema.default({}),
      label: z.string().nullable().default(null),
      /** Also send each checkpoint it commits to this receiver, in the background (only the pages it lacks). */
      sendTo: sendToInputSchema.nullable().default(null),
    }).strict(),
    output: scheduleSchema,
  }),
  'schedules.update': defineCall({
    description: 'Change a schedule\'s timing, full-every, quiet hours, retention, label or destination; the next run is recomputed when the timing changes.',
    input: z.object({
      id: z.number().int().positive(),
      timing: scheduleTimingSchema.optional(),
      fullEvery: count.optional(),
      quietHours: quietHoursSchema.nullable().optional(),
      retention: retentionSchema.optional(),
      label: z.string().nullable().optional(),
      /** null: stop sending. A new destination starts its send status over. */
      sendTo: sendToInputSchema.nullable().optional(),
    }).strict(),
    output: scheduleSchema,
  }),
  'schedules.remove': defineCall({
    description: 'Delete a schedule and its run history; its checkpoints stay in the store and are no longer pruned by any policy or quota.',
    input: idInput,
    output: z.object({ removed: z.number().int() }),
  }),
  'schedules.pause': defineCall({
    description: 'Stop taking runs for a schedule until it is resumed.',
    input: idInput,
    output: scheduleSchema,
  }),
  'schedules.resume': defineCall({
    description: 'Resume a paused schedule; the paused time is not caught up, the next run is the next slot from now.',
    input: idInput,
    output: scheduleSchema,
  }),
  'schedules.runNow': defineCall({
    description: 'Ask the acting scheduler to take a run of this schedule at once (how manual schedules run).',
    input: idInput,
    output: scheduleSchema,
  }),
  'schedules.history': defineCall({
    description: 'Runs of one schedule (or of all), newest first: time, result, duration, frozen time, bytes, error, retries, pruned checkpoints.',
    input: z.object({ id: z.number().int().positive().optional(), limit: z.number().int().positive().max(10_000).default(100) }).strict(),
    output: z.object({ runs: z.array(runSchema) }),
  }),
  'schedules.setGlobalQuota': defineCall({
    description: 'Bytes all scheduled checkpoints of the store may take together (null: no global quota).',
    input: z.object({ quotaBytes: count.nullable() }).strict(),
    output: z.object({ quotaBytes: count.nullable() }),
  }),
} satisfies CallMap;

export const scheduleEvents = {
  'schedule.run.started': z.object({ scheduleId: z.number().int(), pid: z.number().int(), mode: z.enum(['full', 'incremental']), attempt: z.number().int(), missed: count, at: iso }),
  'schedule.run.done': z.object({ run: runSchema }),
  /** willRetry in the run says whether another attempt is coming (with backoff). */
  'schedule.run.failed': z.object({ run: runSchema, code: z.string() }),
  'schedule.run.skipped': z.object({ run: runSchema }),
  'schedule.ended': z.object({ scheduleId: z.number().int(), reason: z.string() }),
  /** A quota was exceeded: `pruned` were removed to meet it; overQuota: still exceeded (pinned or newest checkpoints alone exceed it). */
  'schedule.quota': z.object({ scheduleId: z.number().int().nullable(), scope: z.enum(['target', 'global']), quotaBytes: count, totalBytes: count, keptBytes: count.optional(), pruned: z.array(z.number().int()), overQuota: z.boolean() }),
  /** A background send of a schedule's checkpoints started or ended (never carries the token). */
  'schedule.send': z.object({ scheduleId: z.number().int(), lastSend: lastSendSchema }),
  'schedule.retention.failed': z.object({ scheduleId: z.number().int(), error: z.object({ code: z.string(), message: z.string() }) }),
} satisfies Record<string, z.ZodType>;
