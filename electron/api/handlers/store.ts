/** Handlers for shared/contract/store.ts. */
import type { HandlerMap } from '../handler-types';
import type { storeCalls } from '../../../shared/contract/store';

export const storeHandlers: HandlerMap<typeof storeCalls> = {
};
