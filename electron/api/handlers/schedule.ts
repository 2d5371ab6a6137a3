/** Handlers for shared/contract/schedule.ts. */
import type { HandlerMap } from '../handler-types';
import type { scheduleCalls } from '../../../shared/contract/schedule';

export const scheduleHandlers: HandlerMap<typeof scheduleCalls> = {
};
