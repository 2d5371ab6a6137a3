/**
 * The preload: exposes window.stasis (the StasisApi of shared/contract) through contextBridge and
 * nothing else. Runs sandboxed, so it is bundled to CommonJS and may only require 'electron'.
 * contextBridge keeps only an Error's message, so a failed call's code travels as a "[CODE] " prefix
 * (renderer/src/api.ts turns it back into a StasisError).
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { CallInput, CallName, CallOutput, EventName, EventPayload, Reply } from '../../shared/contract';
import type { StasisBridge } from '../../shared/contract/engine';

// Duplicated from ipc.ts on purpose: importing it would pull ipcMain into the preload bundle.
const CALL_CHANNEL = 'stasis:call';
const EVENT_CHANNEL = 'stasis:event';
const CANCEL_CHANNEL = 'stasis:cancel';
const CHOOSE_FILE_CHANNEL = 'stasis:choose-file';

const api = {
  async call<N extends CallName>(name: N, input: CallInput<N>, callId?: string): Promise<CallOutput<N>> {
    const reply = (await ipcRenderer.invoke(CALL_CHANNEL, name, input, typeof callId === 'string' ? callId : undefined)) as Reply<CallOutput<N>>;
    if (reply.ok) return reply.value;
    throw new Error(`[${reply.error.code}] ${reply.error.message}`);
  },
  cancel(callId: string): void {
    if (typeof callId === 'string') ipcRenderer.send(CANCEL_CHANNEL, callId);
  },
  async chooseFile(kind: 'save' | 'open', defaultName: string): Promise<string | null> {
    return (await ipcRenderer.invoke(CHOOSE_FILE_CHANNEL, kind === 'save' ? 'save' : 'open', String(defaultName))) as string | null;
  },
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    const handler = (_e: IpcRendererEvent, name: string, payload: unknown): void => {
      if (name === event) listener(payload as EventPayload<E>);
    };
    ipcRenderer.on(EVENT_CHANNEL, handler);
    return () => { ipcRenderer.removeListener(EVENT_CHANNEL, handler); };
  },
} satisfies StasisBridge;

contextBridge.exposeInMainWorld('stasis', api);
