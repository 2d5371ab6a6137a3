/**
 * Calls owned by transfers between two Stasis instances over the TLS-PSK link (docs/wire-protocol.md):
 * a receive listener with its one-time pairing token, sending a checkpoint to one, and migrating a
 * running process to one. The token is a secret: it is an input of send/migrate, and an output only
 * of the transfer.listen reply (to the window that asked); no event carries it.
 * Pure TypeScript (zod only); the handlers are in electron/api/handlers/transfer.ts.
 */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';
import { preflightItemSchema } from './restore';

const int = z.number().int();
const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/]+)):(\d{1,5})$/;

/** HOST:PORT ([v6]:PORT too); port 0 only where listening (the system then picks a free one). */
export function hostPort(listening: boolean) {
  return z.string().trim().max(300)
    .regex(HOST_PORT, 'give HOST:PORT, for example 10.0.0.5:7411 or [::1]:7411')
    .refine((v) => {
      // zod runs this after a failed regex too: that failure is already reported.
      const m = HOST_PORT.exec(v);
      const port = m ? Number(m[3]) : 1;
      return port <= 65535 && (listening || port > 0);
    }, listening ? 'the port must be 0 (any free port) to 65535' : 'the port must be 1 to 65535');
}

/** What `stasis receive --listen` or the Receive panel shows: "stasis1-" and 43 base64url characters. */
export const pairingTokenSchema = z.string().trim()
  .regex(/^stasis1-[A-Za-z0-9_-]{43}$/, 'paste the whole pairing token the receiver shows (it starts with stasis1- and has 51 characters)');

export const DEFAULT_LISTEN = '0.0.0.0:7411';

/** One finished session of the receiver. */
export const arrivalSchema = z.object({
  at: z.string(),
  kind: z.enum(['checkpoints', 'replicated', 'migration', 'dry-run', 'failed']),
  /** Checkpoints of this store it imported (and kept). */
  checkpointIds: z.array(int),
  /** A migrated process: its pid here, and the pid it had on the sender. */
  pid: int.nullable(),
  sourcePid: int.nullable(),
  /** One sentence for the user. */
  message: z.string(),
});
export type Arrival = z.output<typeof arrivalSchema>;

export const receiverStatusSchema = z.object({
  listening: z.boolean(),
  /** HOST:PORT it listens on (the real port when 0 was asked for); null when not listening. */
  address: z.string().nullable(),
  /** Keeps listening after each session, with the same token, until stopped. */
  keep: z.boolean(),
  /** Listening on every interface (0.0.0.0 or ::): HOST:PORT for each of this machine's non-loopback addresses. */
  reachableAt: z.array(z.string()),
  /** This engine's sessions, newest first (kept while the engine runs). */
  arrivals: z.array(arrivalSchema),
  /** Why the listener stopped on its own (a failed session), if it did. */
  error: z.string().nullable(),
});
export type ReceiverStatus = z.output<typeof receiverStatusSchema>;

const roundSchema = z.object({
  round: int, checkpointId: int, kind: z.enum(['full', 'incremental', 'final']),
  /** pages: the round's stream; pagesSent: those that crossed (a negotiated round leaves home what the destination holds). */
  pages: z.number(), pagesSent: z.number(), bytes: z.number(), sendMs: z.number(), absorbed: z.boolean(),
});

export const migrateResultSchema = z.object({
  pid: int,
  dryRun: z.boolean(),
  rounds: z.array(roundSchema),
  bytesSent: z.number(),
  /** The destination's pre-flight of the first round. */
  preflight: z.object({ ok: z.boolean(), items: z.array(preflightItemSchema) }),
  destination: z.object({
    pid: int, checkpointId: int, restoreMs: z.number(), prepared: z.boolean(),
    prepareMs: z.number().optional(), unprepared: z.string().optional(), warning: z.string().optional(),
    /** The destination's restore steps inside the downtime. */
    steps: z.array(z.object({ step: z.string(), ms: z.number() })),
  }).optional(),
  downtimeMs: z.number().optional(),
  frozenMs: z.number().optional(),
  /** A migrated tree: every process, root first, with its PID on the destination (null for a dry run). */
  tree: z.object({
    members: z.array(z.object({ pid: int, comm: z.string(), destinationPid: int.nullable() })),
    /** Pages the held last round read while the tree was frozen, and the members that had pre-copy (not for a dry run). */
    frozenPages: int.optional(), preCopied: int.optional(),
  }).optional(),
  /** How the last round's VmFlags were had: read before the commit, or guessed and checked before the destination ran it. */
  vmFlags: z.enum(['read', 'guessed']).optional(),
  /** A guess that was wrong (the mappings that differed): that round was thrown away and the last round taken again. */
  retracted: z.array(z.string()).optional(),
});
export type MigrateResultInfo = z.output<typeof migrateResultSchema>;

export const transferCalls = {
  'transfer.listen': defineCall({
    description: 'Starts listening on HOST:PORT with a new pairing token for one sender (a checkpoint, a replication session, a migration), or with keep for every sender until stopped (`send PID --follow`, a schedule\'s "also send to"); the reply is the only place the token appears.',
    input: z.object({
      address: hostPort(true).default(DEFAULT_LISTEN),
      keep: z.boolean().default(false),
    }).strict(),
    output: receiverStatusSchema.extend({ token: z.string() }),
  }),
  'transfer.receiver': defineCall({
    description: 'Whether the receiver listens, where, and what arrived (never the token).',
    input: z.object({}).strict(),
    output: receiverStatusSchema,
  }),
  'transfer.stop': defineCall({
    description: 'Stops listening (a session in progress runs to its end); the token no longer works.',
    input: z.object({}).strict(),
    output: receiverStatusSchema,
  }),
  'transfer.send': defineCall({
    description: 'Sends a checkpoint (with the chain it needs) to a receiver on another Stasis; it imports it only once it arrived whole.',
    input: z.object({
      id: z.number().int().positive(),
      to: hostPort(false),
      token: pairingTokenSchema,
      how: z.enum(['one', 'flattened', 'chain']).optional(),
    }).strict(),
    output: z.object({ checkpoints: z.array(int), pages: z.number(), bytes: z.number(), received: z.array(int) }),
  }),
  'migrate.run': defineCall({
    description: 'Moves a running process to a receiver on another Stasis (pre-copy rounds, then a short freeze); a dry run sends the first round for the destination\'s pre-flight and stops nothing.',
    input: z.object({
      pid: z.number().int().positive(),
      to: hostPort(false),
      token: pairingTokenSchema,
      dryRun: z.boolean().default(false),
      /**
       * Pause after the destination's pre-flight of round 1 passed (the process runs on): the answer
       * comes as a 'migrate.preflight' event of this call, and `migrate.confirm` goes on in the same
       * session (round 1 is not sent again) or ends it as a dry run. Needs the call's id.
       */
      confirm: z.boolean().default(false),
      maxRounds: z.number().int().min(1).max(100).optional(),
      /** A process tree: false gives its processes new PIDs on the destination (else their own, refused there when taken). */
      samePid: z.boolean().optional(),
    }).strict(),
    output: migrateResultSchema,
  }),
  'migrate.confirm': defineCall({
    description: 'Answers a migrate.run that waits after its pre-flight (confirm): go on with the migration, or end it as a dry run.',
    input: z.object({ callId: z.string().min(1).max(200), go: z.boolean() }).strict(),
    output: z.object({ go: z.boolean() }),
  }),
} satisfies CallMap;

export const transferEvents = {
  /** The receiver started, stopped or finished a session (no token). */
  'transfer.receiver': receiverStatusSchema,
  /** A migrate.run with confirm: the destination's pre-flight passed and the call waits for migrate.confirm. */
  'migrate.preflight': z.object({ callId: z.string(), preflight: z.object({ ok: z.boolean(), items: z.array(preflightItemSchema) }) }),
} satisfies Record<string, z.ZodType>;
