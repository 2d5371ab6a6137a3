/**
 * errno -> StasisError. A failed system call becomes an error whose message names the call, the
 * errno (e.g. "ESRCH") and, where we know one, what the user can do. Owns only translation;
 * never retries or recovers.
 */
import { constants } from 'node:os';
import { StasisError, type ErrorCode } from '../../../shared/errors';

const names = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) if (!names.has(num)) names.set(num, name);

export const E = constants.errno;

export function errnoName(err: number): string {
  return names.get(err) ?? `errno ${err}`;
}

function codeFor(err: number): ErrorCode {
  switch (err) {
    case E.EPERM:
    case E.EACCES:
      return 'PERMISSION_DENIED';
    case E.ESRCH:
      return 'PROCESS_GONE';
    case E.EBUSY:
    case E.EAGAIN:
      return 'BUSY';
    case E.ENOSYS:
    case E.EOPNOTSUPP:
      return 'UNSUPPORTED';
    case E.EINVAL:
    case E.EFAULT:
    case E.EIO:
    default:
      return 'INTERNAL';
  }
}

/** Error raised by a failed system call; `errno` keeps the raw number for callers that branch on it. */
export class SysError extends StasisError {
  readonly errno: number;
  readonly errnoName: string;
  constructor(op: string, err: number, hint?: string) {
    super(codeFor(err), `${op} failed: ${errnoName(err)}${hint ? `. ${hint}` : '.'}`, { errno: errnoName(err) });
    this.errno = err;
    this.errnoName = errnoName(err);
  }
}

export function sysError(op: string, err: number, hint?: string): SysError {
  return new SysError(op, err, hint);
}
