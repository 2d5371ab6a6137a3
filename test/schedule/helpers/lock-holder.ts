// Test helper process: takes the scheduler lock of the store in argv[2] as `argv[3]` (app|daemon),
// prints "held" or "standby <pid>", then keeps heartbeating until killed.
import { ScheduleDb } from '../../../electron/engine/schedule/db';
import { tryAcquireLock } from '../../../electron/engine/schedule/lock';

const db = new ScheduleDb(process.argv[2]!);
const kind = (process.argv[3] ?? 'daemon') as 'app' | 'daemon';
const a = tryAcquireLock(db, kind, Date.now());
process.stdout.write(a.acquired ? 'held\n' : `standby ${a.holder.pid}\n`);
setInterval(() => tryAcquireLock(db, kind, Date.now()), 200);
