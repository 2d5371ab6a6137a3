/** Parsing of checkpoint ids on the store commands' command lines (shared by checkpoints.ts and streams.ts). */
import { StasisError } from '../../../shared/errors';

export function checkpointId(v: string): number {
  const id = Number(v.replace(/^#/, ''));
  if (!Number.isInteger(id) || id <= 0) throw new StasisError('INVALID_INPUT', `"${v}" is not a checkpoint id (a positive whole number, see \`stasis list\`).`);
  return id;
}
