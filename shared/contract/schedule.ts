/** Calls owned by the schedule subsystem. Names are "schedule.verb" or "noun.verb"; inputs and outputs are JSON (bigints as strings). */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

export const scheduleCalls = {
} satisfies CallMap;

export const scheduleEvents = {
} satisfies Record<string, z.ZodType>;

void defineCall;
