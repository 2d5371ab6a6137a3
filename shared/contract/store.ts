/** Calls owned by the store subsystem. Names are "store.verb" or "noun.verb"; inputs and outputs are JSON (bigints as strings). */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

export const storeCalls = {
} satisfies CallMap;

export const storeEvents = {
} satisfies Record<string, z.ZodType>;

void defineCall;
