/**
 * Calls for looking inside checkpoints: memory at an address (inspect.mem), the process's saved
 * state (inspect.details) and searching memory across checkpoints (inspect.grep). Addresses and
 * 64-bit values are hex strings ("0x7f..."), bytes are hex strings. Pure TypeScript (zod only).
 */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

const checkpointId = z.number().int().positive();
const hexAddress = z.string().regex(/^0x[0-9a-f]{1,16}$/i, 'an address in hex, such as 0x7f0000001000');

/** Largest read returned inline; larger reads go to a file (output). */
export const MEM_INLINE_MAX = 1 << 20;
/** Largest read written to a file in one call. */
export const MEM_FILE_MAX = 16 * 1024 ** 3;

export const imageSourceSchema = z.enum(['saved', 'zero', 'file', 'not-present', 'unavailable']);
export type ImageSourceName = z.infer<typeof imageSourceSchema>;

export const mappingRefSchema = z.object({ start: z.string(), end: z.string(), perms: z.string(), path: z.string(), kind: z.string() });
export type MappingRefData = z.infer<typeof mappingRefSchema>;

export const memResultSchema = z.object({
  checkpointId,
  address: z.string(),
  length: z.number().int(),
  /** The bytes (hex), absent when they were written to `output`. */
  data: z.string().optional(),
  output: z.string().optional(),
  ranges: z.array(z.object({ start: z.string(), end: z.string(), source: imageSourceSchema, note: z.string().optional() })),
  mappings: z.array(mappingRefSchema),
});
export type MemResult = z.infer<typeof memResultSchema>;

const signalList = z.array(z.string());
export const processDetailsSchema = z.object({
  checkpointId,
  pid: z.number().int(), ppid: z.number().int(), pgid: z.number().int(), sid: z.number().int(),
  comm: z.string(), exe: z.string(), cmdline: z.array(z.string()),
  environ: z.array(z.string()), environMasked: z.boolean(),
  cwd: z.string(), root: z.string(), umask: z.string(), stopped: z.boolean(),
  credentials: z.object({ uid: z.array(z.number().int()), gid: z.array(z.number().int()) }),
  kernel: z.string(),
  threads: z.array(z.object({
    tid: z.number().int(), rip: z.string(), rsp: z.string(), fsBase: z.string(),
    registers: z.record(z.string(), z.string()),
    inSyscall: z.number().int(), blocked: signalList, pending: signalList,
    altstack: z.object({ sp: z.string(), size: z.number(), flags: z.number() }).optional(),
  })),
  mappings: z.array(z.object({
    start: z.string(), end: z.string(), perms: z.string(), offset: z.string(), dev: z.string(), inode: z.number(),
    path: z.string(), deleted: z.boolean(), kind: z.string(),
  })),
  fds: z.array(z.object({
    fd: z.number().int(), kind: z.string(), target: z.string(), flags: z.string(), pos: z.string(), cloexec: z.boolean(),
    sharesWith: z.number().int().optional(),
  })),
  sockets: z.array(z.object({ fd: z.number().int(), inode: z.number(), description: z.string() })),
  signals: z.object({
    handlers: z.array(z.object({ signal: z.string(), handler: z.string(), flags: z.string(), mask: signalList })),
    pending: signalList,
  }),
  timers: z.object({
    itimers: z.array(z.object({ which: z.string(), intervalUs: z.string(), valueUs: z.string() })),
    posix: z.array(z.object({
      id: z.number(), clock: z.number(), signal: z.string(), notify: z.string(), intervalNs: z.string(), valueNs: z.string(), overrun: z.number(),
    })),
  }),
  rlimits: z.array(z.object({ name: z.string(), cur: z.string(), max: z.string() })),
  warnings: z.array(z.string()),
});
export type ProcessDetailsData = z.infer<typeof processDetailsSchema>;

export const grepHitSchema = z.object({
  address: z.string(),
  length: z.number().int(),
  /** The matched bytes (hex) and as printable text. */
  bytes: z.string(),
  text: z.string(),
  mapping: mappingRefSchema.nullable(),
  endMapping: mappingRefSchema.optional(),
  checkpoints: z.array(checkpointId),
});

export const grepMatchSchema = grepHitSchema.extend({
  first: checkpointId,
  last: checkpointId,
  context: z.object({ address: z.string(), bytes: z.string() }).nullable(),
});
export type GrepMatchData = z.infer<typeof grepMatchSchema>;

export const grepStatsSchema = z.object({
  checkpoints: z.number().int(),
  distinctPages: z.number().int(),
  bytesScanned: z.number(),
  logicalBytes: z.number(),
  boundaries: z.number().int(),
  durationMs: z.number(),
});

export const grepResultSchema = z.object({
  matches: z.array(grepMatchSchema),
  truncated: z.boolean(),
  stats: grepStatsSchema,
});
export type GrepResultData = z.infer<typeof grepResultSchema>;

export const grepInputSchema = z.object({
  pattern: z.string().min(1).max(65536),
  /** Checkpoints to search; or targetId for every checkpoint of one process (not both). */
  ids: z.array(checkpointId).max(100000).optional(),
  targetId: z.number().int().positive().optional(),
  regex: z.boolean().optional(),
  hex: z.boolean().optional(),
  ignoreCase: z.boolean().optional(),
  context: z.number().int().min(0).max(4096).optional(),
  maxMatches: z.number().int().min(1).max(100000).optional(),
  maxMatchLength: z.number().int().min(1).max(4096).optional(),
}).strict().refine((v) => (v.ids !== undefined && v.ids.length > 0) !== (v.targetId !== undefined), {
  message: 'give either checkpoint ids or a targetId (a process), not both and not neither',
});

export const inspectCalls = {
  'inspect.mem': defineCall({
    description: "Bytes of a checkpoint's memory image at an address (newest saved page of the chain, else the mapped file or zeros), with where each range came from.",
    input: z.object({
      id: checkpointId,
      address: hexAddress,
      length: z.number().int().positive().max(MEM_FILE_MAX),
      /** Write the bytes to this file instead of returning them (needed above MEM_INLINE_MAX). */
      output: z.string().min(1).optional(),
    }).strict(),
    output: memResultSchema,
  }),
  'inspect.details': defineCall({
    description: 'The process as the checkpoint saved it: threads and registers, mappings, descriptors, sockets, signals, timers, rlimits, credentials, cwd, command line and environment (values masked unless showEnv).',
    input: z.object({ id: checkpointId, showEnv: z.boolean().optional() }).strict(),
    output: processDetailsSchema,
  }),
  'inspect.grep': defineCall({
    description: 'Searches the memory of checkpoints for text, hex bytes or a regular expression; reads each distinct stored page once and reports, per match, the first and last checkpoint holding it.',
    input: grepInputSchema,
    output: grepResultSchema,
  }),
} satisfies CallMap;

export const inspectEvents = {
  /** A group of places a running inspect.grep found, as soon as it finds them (callId: the call's id). */
  'inspect.hit': grepHitSchema.extend({ callId: z.string().nullable() }),
} satisfies Record<string, z.ZodType>;
