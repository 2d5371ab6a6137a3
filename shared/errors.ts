/**
 * The one error shape that crosses every boundary (engine -> worker host -> IPC/HTTP -> UI/CLI).
 * A message is a sentence a user can act on: what was wrong, and what to do about it.
 * Must never import Node, Electron or DOM APIs.
 */
export const errorCodes = [
  'INVALID_INPUT',
  'NOT_FOUND',
  'PERMISSION_DENIED',
  'PROCESS_GONE',
  'ALREADY_TRACED',
  'UNSUPPORTED',
  'CORRUPT',
  'CONFLICT',
  'BUSY',
  'CANCELLED',
  'PREFLIGHT_FAILED',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export interface StasisErrorData {
  code: ErrorCode;
  message: string;
  /** Optional structured detail (e.g. the failing pre-flight items); must be JSON-serialisable. */
  detail?: unknown;
}

export class StasisError extends Error implements StasisErrorData {
  readonly code: ErrorCode;
  readonly detail?: unknown;
  constructor(code: ErrorCode, message: string, detail?: unknown) {
    super(message);
    this.name = 'StasisError';
    this.code = code;
    if (detail !== undefined) this.detail = detail;
  }
  toJSON(): StasisErrorData {
    return this.detail === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, detail: this.detail };
  }
}

/** Turns anything thrown into the wire shape without losing a StasisError's code. */
export function toErrorData(err: unknown): StasisErrorData {
  if (err instanceof StasisError) return err.toJSON();
  if (err && typeof err === 'object' && 'code' in err && 'message' in err) {
    const e = err as { code: unknown; message: unknown; detail?: unknown };
    if (typeof e.code === 'string' && (errorCodes as readonly string[]).includes(e.code) && typeof e.message === 'string') {
      return e.detail === undefined ? { code: e.code as ErrorCode, message: e.message } : { code: e.code as ErrorCode, message: e.message, detail: e.detail };
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'INTERNAL', message };
}
