/**
 * The engine call and event names the screens use, in one table, so a rename in a subsystem's
 * contract is a one-line change here.
 */
export const CALL = {
  processes: 'processes.list',
  launch: 'capture.launch',
  checkpoint: 'capture.checkpoint',
  checkpoints: 'checkpoints.list',
  show: 'checkpoints.show',
  diff: 'checkpoints.diff',
  remove: 'checkpoints.remove',
  pin: 'checkpoints.pin',
  label: 'checkpoints.label',
  notes: 'checkpoints.notes',
  exportStream: 'checkpoints.export',
  importStream: 'checkpoints.import',
  stats: 'store.stats',
  storeConfig: 'store.config',
  storeConfigure: 'store.configure',
  verify: 'store.verify',
  gc: 'store.gc',
  preflight: 'restore.preflight',
  restore: 'restore.run',
  core: 'restore.core',
  schedules: 'schedules.list',
  mem: 'inspect.mem',
  details: 'inspect.details',
  grep: 'inspect.grep',
  listen: 'transfer.listen',
  receiver: 'transfer.receiver',
  stopListening: 'transfer.stop',
  send: 'transfer.send',
  migrate: 'migrate.run',
  migrateConfirm: 'migrate.confirm',
} as const;

export const EVENT = {
  checkpointDone: 'capture.done',
  storeChanged: 'store.changed',
  restoreDone: 'restore.done',
  scheduleDone: 'schedule.run.done',
  scheduleFailed: 'schedule.run.failed',
  searchHit: 'inspect.hit',
  receiver: 'transfer.receiver',
  migratePreflight: 'migrate.preflight',
} as const;

/** Every event after which the list of checkpoints may have changed. */
export const CHECKPOINT_CHANGES = [EVENT.checkpointDone, EVENT.storeChanged, EVENT.restoreDone, EVENT.scheduleDone, 'schedule.quota'];
