/**
 * Runs one call of the contract against the handlers: validate the input with the call's zod schema,
 * run the handler, validate its output, and wrap everything (including any throw) in a Reply.
 * Every transport ends here: the engine worker (app + browser mode) and the CLI (in-process).
 * Never throws.
 */
import type { z } from 'zod';
import { calls, isCallName, type Reply } from '../../shared/contract';
import { StasisError, toErrorData } from '../../shared/errors';
import type { HandlerContext } from './context';
import { handlers } from './handlers';

/** "at pid: expected number, received string" — one line a user can act on. */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .map((i) => (i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message))
    .join('; ');
}

/** Validates input for a call; throws StasisError (NOT_FOUND / INVALID_INPUT). */
export function parseInput(name: string, input: unknown): unknown {
  if (!isCallName(name)) throw new StasisError('NOT_FOUND', `There is no call named "${name}"; check the name against shared/contract.`);
  const parsed = calls[name].input.safeParse(input === undefined ? {} : input);
  if (!parsed.success) throw new StasisError('INVALID_INPUT', `Invalid input for ${name}: ${describeZodError(parsed.error)}.`);
  return parsed.data;
}

export async function invoke(name: string, input: unknown, ctx: HandlerContext): Promise<Reply<unknown>> {
  try {
    const data = parseInput(name, input);
    if (!isCallName(name)) throw new StasisError('NOT_FOUND', `There is no call named "${name}".`);
    const handler = handlers[name] as ((input: unknown, ctx: HandlerContext) => unknown) | undefined;
    if (!handler) throw new StasisError('UNSUPPORTED', `The call ${name} is declared but not implemented yet.`);
    const raw = await handler(data, ctx);
    if (ctx.signal?.aborted) throw new StasisError('CANCELLED', `${name} was cancelled.`);
    const out = calls[name].output.safeParse(raw);
    // A handler breaking its own contract is our bug, not the user's input: say so plainly.
    if (!out.success) throw new StasisError('INTERNAL', `The ${name} handler returned data that does not match the contract: ${describeZodError(out.error)}.`);
    return { ok: true, value: out.data };
  } catch (err) {
    return { ok: false, error: toErrorData(err) };
  }
}
