/**
 * Calls owned by the store subsystem: listing and inspecting checkpoints, deleting, pinning,
 * labelling, diff, streams, and store maintenance (stats, verify, gc, reindex). Inputs and outputs
 * are JSON. Pure TypeScript (zod only); the handlers are in electron/api/handlers/store.ts.
 */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

const id = z.number().int().positive();

export const targetInfoSchema = z.object({
  id: z.number().int(),
  pid: z.number().int(),
  startTime: z.string(),
  exe: z.string(),
  cmdline: z.array(z.string()),
  name: z.string().nullable().optional(),
  createdAt: z.string(),
});
export type TargetInfoData = z.infer<typeof targetInfoSchema>;

export const checkpointStatsSchema = z.object({
  pagesScanned: z.number(),
  pagesWritten: z.number(),
  pagesChanged: z.number(),
  bytesWritten: z.number(),
  logicalBytes: z.number(),
  frozenMs: z.number().optional(),
  durationMs: z.number().optional(),
});

export const checkpointInfoSchema = z.object({
  id: z.number().int(),
  targetId: z.number().int(),
  parentId: z.number().int().nullable(),
  createdAt: z.string(),
  label: z.string().nullable(),
  notes: z.string().nullable(),
  pinned: z.boolean(),
  mode: z.enum(['full', 'incremental']),
  dirtyTracking: z.string(),
  restoredFrom: z.number().int().nullable().optional(),
  stats: checkpointStatsSchema,
  /** Member of a tree checkpoint (a process and its descendants at one instant): its root checkpoint (the tree's id) and how many processes. */
  tree: z.object({ root: z.number().int(), size: z.number().int() }).nullable().optional(),
});
export type CheckpointInfoData = z.infer<typeof checkpointInfoSchema>;

/** One row of `stasis list --json`. */
export const checkpointRowSchema = z.object({
  id: z.number().int(),
  target: z.number().int(),
  parent: z.number().int().nullable(),
  createdAt: z.string(),
  label: z.string().nullable(),
  pinned: z.boolean(),
  pagesWritten: z.number(),
  bytesWritten: z.number(),
  logicalBytes: z.number(),
  mode: z.enum(['full', 'incremental']),
  /** A tree checkpoint: processes in it (the row is its root; the others are listed only with --target). */
  processes: z.number().int().optional(),
  /** A member listed with --target: the tree checkpoint it belongs to. */
  treeRoot: z.number().int().optional(),
});
export type CheckpointRow = z.infer<typeof checkpointRowSchema>;

export const mappingViewSchema = z.object({
  start: z.string(),
  end: z.string(),
  perms: z.string(),
  path: z.string(),
  kind: z.string(),
  pages: z.number(),
  changedPages: z.number(),
  changed: z.array(z.number()),
  chain: z.array(z.number()),
});

export const checkpointDetailSchema = z.object({
  checkpoint: checkpointInfoSchema,
  target: targetInfoSchema,
  chainLength: z.number().int(),
  /** Checkpoint ids from the root of the chain to this one. */
  chain: z.array(z.number().int()),
  mappings: z.array(mappingViewSchema),
  threads: z.number().int(),
  fds: z.number().int(),
  warnings: z.array(z.string()),
});
export type CheckpointDetailData = z.infer<typeof checkpointDetailSchema>;

export const diffMappingSchema = z.object({
  start: z.string(), end: z.string(), path: z.string(),
  changedPages: z.number(), addedPages: z.number(), removedPages: z.number(), bytes: z.number(),
});
export const diffResultSchema = z.object({
  a: z.number().int(), b: z.number().int(),
  changedPages: z.number(), addedPages: z.number(), removedPages: z.number(), bytes: z.number(),
  mappings: z.array(diffMappingSchema),
});

export const verifyResultSchema = z.object({
  ok: z.boolean(),
  problems: z.array(z.object({ what: z.string(), where: z.string(), affects: z.array(z.number().int()) })),
});

/** How a store writes new page blocks (engine/store/api.ts COMPRESSIONS). */
export const compressionSchema = z.enum(['none', 'lz4']);
/** flattenAfter: re-flatten a new checkpoint reading from more segments than this (0 = never; engine/store/api.ts StoreConfig). */
export const storeConfigSchema = z.object({ compression: compressionSchema, flattenAfter: z.number().int().min(0) });

export const storeStatsSchema = z.object({
  dir: z.string(),
  checkpoints: z.number().int(),
  targets: z.number().int(),
  storeBytes: z.number(),
  logicalBytes: z.number(),
  uniquePages: z.number(),
  dedupRatio: z.number(),
  /** Stored page bytes / stored block bytes: 1 when nothing is compressed. */
  compressionRatio: z.number(),
  compression: compressionSchema,
});

export const exportKindSchema = z.enum(['one', 'flattened', 'chain']);

export const storeCalls = {
  'checkpoints.list': defineCall({
    description: 'Every checkpoint (optionally of one target) with the targets they belong to.',
    input: z.object({ targetId: z.number().int().optional() }),
    output: z.object({ targets: z.array(targetInfoSchema), checkpoints: z.array(checkpointInfoSchema) }),
  }),
  'checkpoints.rows': defineCall({
    description: 'One flat row per checkpoint (what `stasis list --json` prints).',
    input: z.object({ targetId: z.number().int().optional() }),
    output: z.array(checkpointRowSchema),
  }),
  'checkpoints.show': defineCall({
    description: 'One checkpoint in detail: its target, its chain, and its mappings with where pages changed.',
    input: z.object({ id, bins: z.number().int().min(1).max(1024).optional() }),
    output: checkpointDetailSchema,
  }),
  'checkpoints.diff': defineCall({
    description: 'Pages changed, added and removed from checkpoint a to checkpoint b, per mapping.',
    input: z.object({ a: id, b: id }),
    output: diffResultSchema,
  }),
  'checkpoints.remove': defineCall({
    description: 'Deletes checkpoints (any, not only the newest); the others keep every page they need. Pinned ones are refused.',
    input: z.object({ ids: z.array(id).min(1) }),
    output: z.object({ removed: z.array(z.number().int()) }),
  }),
  'checkpoints.pin': defineCall({
    description: 'Pins or unpins a checkpoint (pinned checkpoints are never deleted by retention or rm).',
    input: z.object({ id, pinned: z.boolean() }),
    output: checkpointInfoSchema,
  }),
  'checkpoints.label': defineCall({
    description: 'Sets or clears the label of a checkpoint.',
    input: z.object({ id, label: z.string().max(200).nullable() }),
    output: checkpointInfoSchema,
  }),
  'checkpoints.notes': defineCall({
    description: 'Sets or clears the notes of a checkpoint.',
    input: z.object({ id, notes: z.string().max(100_000).nullable() }),
    output: checkpointInfoSchema,
  }),
  'checkpoints.rebase': defineCall({
    description: 'Stores checkpoint id as an incremental on top of checkpoint onto (e.g. two fulls); both keep their contents.',
    input: z.object({ id, onto: id }),
    output: z.object({ id: z.number().int(), parentId: z.number().int(), pagesChanged: z.number() }),
  }),
  'checkpoints.export': defineCall({
    description: 'Writes a checkpoint as one stream file: with its ancestors (one), flattened into one full, or its whole tree (chain).',
    input: z.object({ id, file: z.string().min(1), how: exportKindSchema.optional() }),
    output: z.object({ file: z.string(), kind: exportKindSchema, checkpoints: z.array(z.number().int()), pages: z.number(), bytes: z.number() }),
  }),
  'checkpoints.import': defineCall({
    description: 'Validates a stream file completely, then imports its checkpoints atomically (deduplicated).',
    input: z.object({ file: z.string().min(1) }),
    output: z.object({ ids: z.array(z.number().int()) }),
  }),
  'store.stats': defineCall({
    description: 'Store size on disk, logical size, dedup and compression ratios.',
    input: z.object({}),
    output: storeStatsSchema,
  }),
  'store.config': defineCall({
    description: 'The store settings (how new page blocks are compressed, when long chains are re-flattened).',
    input: z.object({}),
    output: storeConfigSchema,
  }),
  'store.configure': defineCall({
    description: 'Changes store settings; they apply to segments written afterwards (checkpoints, import, gc), existing data stays readable as it is.',
    input: storeConfigSchema.partial(),
    output: storeConfigSchema,
  }),
  'store.verify': defineCall({
    description: 'Checks every checksum and every record; names what is damaged and which checkpoints it affects.',
    input: z.object({}),
    output: verifyResultSchema,
  }),
  'store.gc': defineCall({
    description: 'Reclaims space no checkpoint uses by compacting segment files.',
    input: z.object({}),
    output: z.object({ bytesReclaimed: z.number(), segmentsRewritten: z.number().int() }),
  }),
  'store.reindex': defineCall({
    description: 'Rebuilds the index from the segment files alone.',
    input: z.object({}),
    output: z.object({ checkpoints: z.number().int(), problems: z.array(z.object({ what: z.string(), where: z.string() })) }),
  }),
} satisfies CallMap;

export const storeEvents = {
  'store.changed': z.object({ reason: z.string(), ids: z.array(z.number().int()) }),
} satisfies Record<string, z.ZodType>;
