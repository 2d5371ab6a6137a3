/** Calls owned by the restore subsystem. Names are "restore.verb" or "noun.verb"; inputs and outputs are JSON (bigints as strings). */
import { z } from 'zod';
import { defineCall, type CallMap } from './define';

export const restoreCalls = {
} satisfies CallMap;

export const restoreEvents = {
} satisfies Record<string, z.ZodType>;

void defineCall;
