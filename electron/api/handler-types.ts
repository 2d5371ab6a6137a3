/**
 * The type every subsystem's handler map satisfies: one function per call of its contract file.
 * Handlers run inside the engine worker; they get validated input and return plain JSON.
 */
import type { z } from 'zod';
import type { CallMap } from '../../shared/contract/define';
import type { HandlerContext } from './context';

export type HandlerMap<C extends CallMap> = {
  [K in keyof C]: (input: z.output<C[K]['input']>, ctx: HandlerContext) => z.input<C[K]['output']> | Promise<z.input<C[K]['output']>>;
};
