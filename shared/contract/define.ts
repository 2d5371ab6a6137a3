/**
 * How a call of the API is declared: a name, a zod schema for its input and one for its output.
 * Both transports (Electron IPC and the browser-mode HTTP server) validate with these same schemas,
 * and the handlers in electron/api/ implement them. Pure TypeScript: no Node, Electron or DOM.
 */
import type { z } from 'zod';

export interface CallSpec<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  description: string;
  input: I;
  output: O;
}

export function defineCall<I extends z.ZodType, O extends z.ZodType>(spec: CallSpec<I, O>): CallSpec<I, O> {
  return spec;
}

export type CallMap = Record<string, CallSpec>;
