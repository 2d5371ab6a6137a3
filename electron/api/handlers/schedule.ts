/**
 * Handlers for shared/contract/schedule.ts: thin wrappers over electron/engine/schedule/service.ts
 * that turn epoch-millisecond times into ISO strings. Never capture or prune here: only the acting
 * scheduler does, so two processes never act on one store.
 */
import type { HandlerMap } from '../handler-types';
import type { scheduleCalls } from '../../../shared/contract/schedule';
import {
  addSchedule, getGlobalQuota, lastSendJson, lockHolder, pauseSchedule, removeSchedule, resumeSchedule, runJson, runScheduleNow, scheduleDbFor, setGlobalQuota, updateSchedule,
  type Schedule,
} from '../../engine/schedule';

const isoOrNull = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function scheduleJson(s: Schedule) {
  const { sendTo, lastSend, ...rest } = s;
  return {
    ...rest, createdAt: new Date(s.createdAt).toISOString(), nextRunAt: isoOrNull(s.nextRunAt), lastRunAt: isoOrNull(s.lastRunAt),
    // The token stays in schedules.db: only its end is shown, to tell two apart.
    sendTo: sendTo && { address: sendTo.address, tokenHint: `…${sendTo.token.slice(-4)}` },
    lastSend: lastSend && lastSendJson(lastSend),
  };
}

export const scheduleHandlers: HandlerMap<typeof scheduleCalls> = {
  'schedules.list': (_input, ctx) => {
    const db = scheduleDbFor(ctx.storeDir);
    const h = lockHolder(db, Date.now());
    return {
      schedules: db.list().map(scheduleJson),
      scheduler: h && { pid: h.pid, kind: h.kind, since: new Date(h.since).toISOString(), heartbeatAt: new Date(h.heartbeatAt).toISOString() },
      globalQuotaBytes: getGlobalQuota(db),
    };
  },
  'schedules.add': (input, ctx) => scheduleJson(addSchedule(scheduleDbFor(ctx.storeDir), input, Date.now(), () => ctx.store())),
  'schedules.update': ({ id, ...patch }, ctx) => scheduleJson(updateSchedule(scheduleDbFor(ctx.storeDir), id, patch, Date.now())),
  'schedules.remove': ({ id }, ctx) => {
    removeSchedule(scheduleDbFor(ctx.storeDir), id);
    return { removed: id };
  },
  'schedules.pause': ({ id }, ctx) => scheduleJson(pauseSchedule(scheduleDbFor(ctx.storeDir), id)),
  'schedules.resume': ({ id }, ctx) => scheduleJson(resumeSchedule(scheduleDbFor(ctx.storeDir), id, Date.now())),
  'schedules.runNow': ({ id }, ctx) => scheduleJson(runScheduleNow(scheduleDbFor(ctx.storeDir), id, Date.now())),
  'schedules.history': ({ id, limit }, ctx) => {
    const db = scheduleDbFor(ctx.storeDir);
    if (id !== undefined) db.require(id);
    return { runs: db.history(id, limit).map(runJson) };
  },
  'schedules.setGlobalQuota': ({ quotaBytes }, ctx) => ({ quotaBytes: setGlobalQuota(scheduleDbFor(ctx.storeDir), quotaBytes) }),
};
