/**
 * Calls owned by the restore subsystem: pre-flight checklist, restore into a new process, and ELF
 * core export. Inputs and outputs are JSON. Pure TypeScript (zod only).
 */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

const checkpointId = z.number().int().positive();

/** Where vanished terminals and pipes go in the restored process. */
export const restoreRedirectSchema = z.object({
  stdout: z.string().min(1).optional(),
  stderr: z.string().min(1).optional(),
  stdin: z.string().min(1).optional(),
  log: z.string().min(1).optional(),
  /** false: always take a new PID (default: the original one when it is free and we may). */
  samePid: z.boolean().optional(),
  /**
   * A terminal device (/dev/pts/N): the restored process's terminal descriptors are opened on it and
   * its process group becomes its foreground group (`stasis restore --attach`, the CLI's own
   * terminal; refused outside the in-process CLI).
   */
  attach: z.string().regex(/^\/dev\/(pts\/\d+|tty\w*|console)$/, 'a terminal device such as /dev/pts/3').optional(),
});

export const preflightItemSchema = z.object({
  id: z.string(),
  label: z.string(),
  ok: z.boolean(),
  reason: z.string(),
  fix: z.string().nullable(),
});
export type PreflightItemInfo = z.infer<typeof preflightItemSchema>;

export const preflightResultSchema = z.object({
  checkpointId,
  ok: z.boolean(),
  items: z.array(preflightItemSchema),
});
export type PreflightInfo = z.infer<typeof preflightResultSchema>;

export const restoreResultSchema = z.object({
  checkpointId,
  pid: z.number().int(),
  samePid: z.boolean(),
  originalPid: z.number().int(),
  durationMs: z.number(),
  bytesWritten: z.number(),
  writeMs: z.number(),
  log: z.string(),
  steps: z.array(z.object({ step: z.string(), ms: z.number() })),
  /** Checkpoint recording the restored process (a branch from checkpointId); its next checkpoint is incremental on top of it. */
  branchCheckpointId: z.number().int().nullable(),
  warning: z.string().optional(),
  /** A tree checkpoint: every process restored, root first (pid and samePid above are the root's). */
  members: z.array(z.object({
    checkpointId, originalPid: z.number().int(), pid: z.number().int(), samePid: z.boolean(),
    parentPid: z.number().int().nullable(), comm: z.string(), zombies: z.array(z.number().int()),
  })).optional(),
});
export type RestoreInfo = z.infer<typeof restoreResultSchema>;

export const restoreCalls = {
  'restore.preflight': defineCall({
    description: 'Checks, without side effects, whether a checkpoint can be restored here and now; returns the checklist the restore wizard shows.',
    input: z.object({ id: checkpointId }).extend(restoreRedirectSchema.shape),
    output: preflightResultSchema,
  }),
  'restore.run': defineCall({
    description: 'Restores a checkpoint as a new running process (pre-flight first); reports its pid and whether it kept the original pid.',
    input: z.object({ id: checkpointId }).extend(restoreRedirectSchema.shape),
    output: restoreResultSchema,
  }),
  'restore.core': defineCall({
    description: 'Writes a checkpoint as an ELF core file that `gdb EXE FILE` opens.',
    input: z.object({ id: checkpointId, output: z.string().min(1) }),
    output: z.object({ checkpointId, path: z.string(), bytes: z.number(), exe: z.string() }),
  }),
} satisfies CallMap;

export const restoreEvents = {
  'restore.done': z.object({ checkpointId, pid: z.number().int(), durationMs: z.number() }),
} satisfies Record<string, z.ZodType>;
