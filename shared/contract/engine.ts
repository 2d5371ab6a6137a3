/** Calls owned by the engine subsystem. Names are "engine.verb" or "noun.verb"; inputs and outputs are JSON (bigints as strings). */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

export const engineCalls = {
} satisfies CallMap;

export const engineEvents = {
} satisfies Record<string, z.ZodType>;

void defineCall;
