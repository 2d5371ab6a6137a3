/** Handlers for shared/contract/restore.ts. */
import type { HandlerMap } from '../handler-types';
import type { restoreCalls } from '../../../shared/contract/restore';

export const restoreHandlers: HandlerMap<typeof restoreCalls> = {
};
