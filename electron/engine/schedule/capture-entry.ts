/**
 * The capture function schedules use by default: capture's checkpoint() (electron/engine/capture).
 * A separate module so the scheduler core and its tests can inject another CaptureFn.
 */
import { StasisError } from '../../../shared/errors';
import type { CaptureFn } from './scheduler';

export const defaultCapture: CaptureFn = () => {
  throw new StasisError('UNSUPPORTED', 'The capture engine is not built into this version of Stasis yet; scheduled runs cannot take checkpoints.');
};
