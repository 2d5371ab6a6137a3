/** All handlers, assembled; must cover every call of shared/contract (checked by the type below). */
import type { HandlerMap } from '../handler-types';
import type { Calls } from '../../../shared/contract';
import { engineHandlers } from './engine';
import { storeHandlers } from './store';
import { captureHandlers } from './capture';
import { restoreHandlers } from './restore';
import { scheduleHandlers } from './schedule';
import { inspectHandlers } from './inspect';
import { transferHandlers } from './transfer';

export const handlers: HandlerMap<Calls> = { ...engineHandlers, ...storeHandlers, ...captureHandlers, ...restoreHandlers, ...scheduleHandlers, ...inspectHandlers, ...transferHandlers };
