/** Calls owned by the capture subsystem. Names are "capture.verb" or "noun.verb"; inputs and outputs are JSON (bigints as strings). */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

export const captureCalls = {
} satisfies CallMap;

export const captureEvents = {
} satisfies Record<string, z.ZodType>;

void defineCall;
