/**
 * Calls owned by the engine itself (not a subsystem): its health and what this kernel allows.
 * Names are "engine.verb"; inputs and outputs are JSON (bigints as strings). Pure TypeScript.
 */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';
import type { CallInput, CallName, CallOutput, StasisApi } from './index';

/** One kernel capability: available (true/false), or null when it could not be probed. */
export const featureSchema = z.object({
  available: z.boolean().nullable(),
  /** One sentence: why it is (un)available, or what was measured. */
  detail: z.string(),
});
export type Feature = z.output<typeof featureSchema>;

export const engineStatusSchema = z.object({
  version: z.string(),
  node: z.string(),
  /** Where the engine runs: 'worker' (app, browser mode) or 'in-process' (CLI). */
  runtime: z.enum(['worker', 'in-process']),
  kernel: z.object({ release: z.string(), arch: z.string() }),
  features: z.object({
    ptrace: featureSchema,
    softDirty: featureSchema,
    pagemapScan: featureSchema,
    uffdWp: featureSchema,
    /** [vdso]/[vvar] sealed by the kernel (mseal): "available" means sealed, i.e. they cannot be moved. */
    sealedSystemMappings: featureSchema,
  }),
  store: z.object({
    path: z.string(),
    exists: z.boolean(),
    /** Bytes on disk under the store directory (0 when it does not exist yet). */
    bytes: z.number().int().nonnegative(),
  }),
});
export type EngineStatus = z.output<typeof engineStatusSchema>;

export const engineCalls = {
  'engine.status': defineCall({
    description: 'Engine version, kernel, which checkpoint features this kernel allows, and the store location and size.',
    input: z.object({}).strict(),
    output: engineStatusSchema,
  }),
} satisfies CallMap;

export const progressUnitSchema = z.enum(['pages', 'bytes', 'steps']);
export type ProgressUnit = z.output<typeof progressUnitSchema>;

/** Which long operation an 'op.progress' event is about. */
export const progressOpSchema = z.enum(['checkpoint', 'restore', 'export', 'import', 'verify', 'gc', 'search', 'send', 'migrate']);
export type ProgressOp = z.output<typeof progressOpSchema>;

export const opProgressSchema = z.object({
  /**
   * The id the client gave its call (the same id that cancels it), so a window knows which of its
   * calls this is; null for work no client call started (none yet). Events go to every client.
   */
  callId: z.string().nullable(),
  op: progressOpSchema,
  done: z.number().nonnegative(),
  total: z.number().nonnegative(),
  unit: progressUnitSchema,
  /** The part of the operation running now: a restore step, "segments", "pages"... */
  phase: z.string().optional(),
  /** Progress inside the current phase when the operation counts steps (a restore's pages). */
  within: z.object({ done: z.number().nonnegative(), total: z.number().nonnegative(), unit: progressUnitSchema }).optional(),
});
export type OpProgress = z.output<typeof opProgressSchema>;

export const engineEvents = {
  /** Sent by the engine host when its worker stops unexpectedly; calls in flight fail with INTERNAL. */
  'engine.crashed': z.object({ message: z.string() }),
  /**
   * A long call's progress, at most ~10 per second per call, and one last event with done == total
   * when it succeeds (none when it fails or is cancelled: the call's reply says so).
   */
  'op.progress': opProgressSchema,
} satisfies Record<string, z.ZodType>;

/**
 * What the Electron preload exposes as window.stasis: the StasisApi, where a call may carry an id
 * chosen by the renderer, and cancel(id) asks main to cancel that call (an AbortSignal cannot cross
 * contextBridge). The renderer wraps it back into a StasisApi with AbortSignal support.
 */
export interface StasisBridge extends StasisApi {
  call<N extends CallName>(name: N, input: CallInput<N>, callId?: string): Promise<CallOutput<N>>;
  cancel(callId: string): void;
  /** A native save ('save', with a suggested file name) or open dialog for a stream file; null when the user cancels. */
  chooseFile?(kind: 'save' | 'open', defaultName: string): Promise<string | null>;
}
