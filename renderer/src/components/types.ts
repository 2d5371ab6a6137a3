/**
 * Shapes of the engine data the screens show, derived from the shared contract (the zod schemas
 * both transports validate with), so the UI cannot drift from what the engine sends.
 * Types only: nothing here is ever filled in by the UI itself.
 */
import type { CallOutput, EventPayload } from '../../../shared/contract';

/** One row of processes.list (capture). */
export type ProcessInfo = CallOutput<'processes.list'>['processes'][number];
export type TargetInfo = CallOutput<'checkpoints.list'>['targets'][number];
export type CheckpointInfo = CallOutput<'checkpoints.list'>['checkpoints'][number];
export type CheckpointStats = CheckpointInfo['stats'];
export type CheckpointDetail = CallOutput<'checkpoints.show'>;
/** One mapping of a checkpoint's address space, with where its pages changed. */
export type MappingView = CheckpointDetail['mappings'][number];
export type DiffResult = CallOutput<'checkpoints.diff'>;
export type DiffMapping = DiffResult['mappings'][number];
export type StoreStats = CallOutput<'store.stats'>;
export type StoreConfig = CallOutput<'store.config'>;
export type CaptureResult = CallOutput<'capture.checkpoint'>;
export type PreflightResult = CallOutput<'restore.preflight'>;
export type PreflightItem = PreflightResult['items'][number];
export type RestoreResult = CallOutput<'restore.run'>;
export type ScheduleSummary = CallOutput<'schedules.list'>['schedules'][number];
export type MemRead = CallOutput<'inspect.mem'>;
export type ProcessDetails = CallOutput<'inspect.details'>;
export type GrepResult = CallOutput<'inspect.grep'>;
export type GrepMatch = GrepResult['matches'][number];
/** A group of places a running search found (streamed before the merged result). */
export type GrepHitEvent = EventPayload<'inspect.hit'>;
export type ReceiverStatus = CallOutput<'transfer.receiver'>;
export type Arrival = ReceiverStatus['arrivals'][number];
export type SendResult = CallOutput<'transfer.send'>;
export type MigrateResult = CallOutput<'migrate.run'>;
export type MigratePreflightEvent = EventPayload<'migrate.preflight'>;
