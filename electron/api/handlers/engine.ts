/** Handlers for shared/contract/engine.ts. */
import type { HandlerMap } from '../handler-types';
import type { engineCalls } from '../../../shared/contract/engine';

export const engineHandlers: HandlerMap<typeof engineCalls> = {
};
