/**
 * Calls owned by the capture subsystem: checkpoint a live process, list the processes that can be
 * checkpointed (the `ps` data), and launch a program under Stasis. Inputs and outputs are JSON.
 * Pure TypeScript (zod only).
 */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

const pid = z.number().int().positive();

export const checkpointResultSchema = z.object({
  id: z.number().int(),
  pid,
  mode: z.enum(['full', 'incremental']),
  /**
   * How an incremental found the changed pages: 'soft-dirty' bits, 'uffd-wp' (a userfaultfd the
   * engine kept write-protecting the process since the parent), or 'hash' (every page compared).
   */
  dirtyTracking: z.enum(['soft-dirty', 'hash', 'uffd-wp']),
  /** How long the target was stopped, in ms. */
  frozenMs: z.number(),
  durationMs: z.number(),
  pagesScanned: z.number().int(),
  pagesWritten: z.number().int(),
  bytesWritten: z.number().int(),
  /**
   * 'pre-copy': memory read while it ran, frozen only to copy what changed meanwhile; 'uffd-wp':
   * frozen only to write-protect its memory (read live afterwards); 'snapshot': frozen only to fork
   * a copy-on-write snapshot; 'all-threads': frozen for the whole capture.
   */
  freeze: z.enum(['pre-copy', 'uffd-wp', 'snapshot', 'all-threads']),
  threads: z.number().int(),
  killed: z.boolean(),
  warnings: z.array(z.string()),
  /** A tree checkpoint (`tree: true`): every process in it, root first; id is the root's (the tree's id). */
  members: z.array(z.object({
    pid, id: z.number().int(), comm: z.string(), parentPid: z.number().int().nullable(),
    /** Exited children not reaped yet, saved with their exit status. */
    zombies: z.array(z.number().int()),
    /** pre-copy: its memory was read while the tree ran, the freeze copied only what it wrote since. */
    freeze: z.enum(['pre-copy', 'all-threads']),
    /** Pages read while the tree was frozen. */
    frozenPages: z.number().int(),
  })).optional(),
});
export type CheckpointResultInfo = z.infer<typeof checkpointResultSchema>;

export const processInfoSchema = z.object({
  pid,
  ppid: z.number().int(),
  uid: z.number().int(),
  /** The uid's name from /etc/passwd; null when it has no entry there. */
  user: z.string().nullable().optional(),
  comm: z.string(),
  cmdline: z.array(z.string()),
  exe: z.string().nullable(),
  state: z.string(),
  threads: z.number().int(),
  rssKb: z.number().int(),
  startTime: z.string(),
  checkpointable: z.boolean(),
  /** Why it cannot be checkpointed (null when it can). */
  reason: z.string().nullable(),
});
export type ProcessInfoItem = z.infer<typeof processInfoSchema>;

export const launchResultSchema = z.object({
  pid,
  log: z.string(),
  name: z.string().optional(),
  ptracerAny: z.boolean(),
});
export type LaunchResultInfo = z.infer<typeof launchResultSchema>;

export const captureCalls = {
  'capture.checkpoint': defineCall({
    description: 'Checkpoints a live process into the store (full, or incremental against its latest checkpoint); leaves it running unless mode is "kill".',
    input: z.object({
      pid,
      mode: z.enum(['leave-running', 'kill']).optional(),
      full: z.boolean().optional(),
      label: z.string().max(500).nullable().optional(),
      name: z.string().min(1).max(200).optional(),
      /** Refuse if the process's start time differs (the PID was reused). */
      expectStartTime: z.string().regex(/^\d+$/).optional(),
      /**
       * How to keep downtime short when leaving it running: 'auto' (single-threaded: pre-copy where
       * the kernel allows, else a fork snapshot; multi-threaded: all threads frozen), 'precopy' (any
       * threads), 'fork', 'uffd' (userfaultfd write-protect, any threads), 'never'.
       */
      snapshot: z.enum(['auto', 'precopy', 'fork', 'uffd', 'never']).optional(),
      /** Deleted open files up to this many bytes each are saved into the checkpoint (default 10 MiB). */
      ghostLimit: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
      /** The process and all its descendants, at one instant, as one tree checkpoint (every process frozen throughout). Default: when it has child processes; false takes it alone. */
      tree: z.boolean().optional(),
    }),
    output: checkpointResultSchema,
  }),
  'processes.list': defineCall({
    description: "The user's processes, each with whether it can be checkpointed now and why not.",
    input: z.object({ all: z.boolean().optional() }),
    output: z.object({ processes: z.array(processInfoSchema) }),
  }),
  'capture.launch': defineCall({
    description: 'Starts a program under Stasis (stdio to a log file in the store) so later Stasis processes can checkpoint it even under Yama ptrace_scope=1.',
    input: z.object({
      // Arguments may be empty (`--save ''`), the program may not; none can hold a NUL byte (exec cannot pass it).
      argv: z.array(z.string().refine((a) => !a.includes('\0'), 'an argument holds a NUL byte, which no program can receive'))
        .min(1, 'give the program to start')
        .refine((a) => a[0] !== '', 'the program to start is an empty string'),
      name: z.string().min(1).max(200).optional(),
      cwd: z.string().min(1).optional(),
    }),
    output: launchResultSchema,
  }),
} satisfies CallMap;

export const captureEvents = {
  'capture.done': z.object({ id: z.number().int(), pid, frozenMs: z.number(), bytesWritten: z.number() }),
} satisfies Record<string, z.ZodType>;
