/**
 * Which scheduler events deserve a desktop notification, and their wording: a final failure (no
 * more retries), an ended schedule, a quota that forced pruning or is still exceeded, a pruning
 * problem. Pure; the Electron main process shows them (electron/main/schedule-notifications.ts).
 */
import { formatBytes } from './units';

export interface Notice {
  title: string;
  body: string;
}

type Payload = Record<string, unknown>;

export function scheduleNotice(event: string, payload: unknown): Notice | null {
  const p = (payload ?? {}) as Payload;
  switch (event) {
    case 'schedule.run.failed': {
      const run = (p.run ?? {}) as Payload;
      if (run.willRetry) return null; // retries are routine; tell the user when they are used up
      return {
        title: 'Scheduled checkpoint failed',
        body: `Schedule #${String(run.scheduleId)}${run.pid ? ` (pid ${String(run.pid)})` : ''}: ${String(run.error)} It will try again at its next run.`,
      };
    }
    case 'schedule.ended':
      return { title: 'Schedule ended', body: `Schedule #${String(p.scheduleId)}: ${String(p.reason)}` };
    case 'schedule.quota': {
      const pruned = Array.isArray(p.pruned) ? p.pruned.length : 0;
      const scope = p.scope === 'global' ? 'The global checkpoint quota' : `The quota of schedule #${String(p.scheduleId)}`;
      const quota = formatBytes(Number(p.quotaBytes ?? 0));
      if (p.overQuota) {
        return { title: 'Checkpoint quota exceeded', body: `${scope} (${quota}) is still exceeded${pruned ? ` after pruning ${pruned} checkpoint${pruned === 1 ? '' : 's'}` : ''}: pinned or newest checkpoints alone are larger. Unpin some or raise the quota.` };
      }
      if (!pruned) return null;
      return { title: 'Old checkpoints pruned', body: `${scope} (${quota}) was reached: the ${pruned} oldest checkpoint${pruned === 1 ? ' was' : 's were'} deleted.` };
    }
    case 'schedule.retention.failed': {
      const e = (p.error ?? {}) as Payload;
      return { title: 'Pruning checkpoints failed', body: `Schedule #${String(p.scheduleId)}: ${String(e.message)}` };
    }
    default:
      return null;
  }
}
