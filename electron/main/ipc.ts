/**
 * The only bridge between the renderer and the engine in the desktop app: one invoke channel for
 * calls and one send channel for events, both under the CHANNEL_PREFIX allow-list. Every call is
 * checked to come from our own window's top frame showing our own page, then validated with the
 * contract's zod schemas (again in the worker) before any handler runs. Replies are Reply envelopes.
 */
import { dialog, ipcMain, type BrowserWindow, type IpcMainEvent, type IpcMainInvokeEvent } from 'electron';
import type { Reply } from '../../shared/contract';
import { toErrorData } from '../../shared/errors';
import { parseInput } from '../api/invoke';
import type { EngineCaller } from '../engine/host/engine-host';
import { isTrustedSender } from './sender-check';
import { CallCancels } from './call-cancels';

export const CHANNEL_PREFIX = 'stasis:';
export const CALL_CHANNEL = `${CHANNEL_PREFIX}call`;
export const EVENT_CHANNEL = `${CHANNEL_PREFIX}event`;
/** Renderer -> main: cancel the call it started with this id (a string it chose). */
export const CANCEL_CHANNEL = `${CHANNEL_PREFIX}cancel`;
/** Renderer -> main: a native save/open dialog for export and import; answers a path or null. */
export const CHOOSE_FILE_CHANNEL = `${CHANNEL_PREFIX}choose-file`;

export function wireIpc(engine: EngineCaller, window: () => BrowserWindow | null, pageUrl: string): () => void {
  const trusted = (e: IpcMainInvokeEvent | IpcMainEvent): boolean => {
    const win = window();
    const frame = e.senderFrame;
    return isTrustedSender({
      window: win ? { destroyed: win.isDestroyed(), contentsId: win.isDestroyed() ? -1 : win.webContents.id } : null,
      senderId: e.sender.id,
      frame: frame ? { url: frame.url, isMain: frame === e.sender.mainFrame } : null,
      pageUrl,
    });
  };

  const cancels = new CallCancels();

  ipcMain.handle(CALL_CHANNEL, async (e, name: unknown, input: unknown, callId: unknown): Promise<Reply<unknown>> => {
    if (!trusted(e)) return { ok: false, error: { code: 'PERMISSION_DENIED', message: 'Refused: this call did not come from the Stasis window.' } };
    const call = cancels.begin(e.sender.id, callId);
    try {
      const parsed = parseInput(String(name), input);
      // The renderer's id also tags the call's progress events (the host drops an unusable one).
      return await engine.call(String(name), parsed, call.signal, typeof callId === 'string' ? callId : undefined);
    } catch (err) {
      return { ok: false, error: toErrorData(err) };
    } finally {
      call.end();
    }
  });

  const onCancel = (e: IpcMainEvent, callId: unknown): void => {
    if (trusted(e)) cancels.cancel(e.sender.id, callId);
  };
  ipcMain.on(CANCEL_CHANNEL, onCancel);

  // The path comes from the user's own dialog, never from the page: the page only suggests a name.
  ipcMain.handle(CHOOSE_FILE_CHANNEL, async (e, kind: unknown, defaultName: unknown): Promise<string | null> => {
    const win = window();
    if (!trusted(e) || !win || win.isDestroyed()) return null;
    const name = typeof defaultName === 'string' ? defaultName.replace(/[^\w.-]/g, '_').slice(0, 100) : '';
    if (kind === 'save') {
      const r = await dialog.showSaveDialog(win, { title: 'Export checkpoint', defaultPath: name || undefined, properties: ['showOverwriteConfirmation', 'createDirectory'] });
      return r.canceled || !r.filePath ? null : r.filePath;
    }
    if (kind === 'open') {
      const r = await dialog.showOpenDialog(win, { title: 'Import a stream file', properties: ['openFile'], filters: [{ name: 'Stasis stream', extensions: ['stasis'] }, { name: 'All files', extensions: ['*'] }] });
      return r.canceled || r.filePaths.length !== 1 ? null : r.filePaths[0];
    }
    return null;
  });

  const unsubscribe = engine.onEvent((event, payload) => {
    const win = window();
    if (win && !win.isDestroyed()) win.webContents.send(EVENT_CHANNEL, event, payload);
  });

  return () => {
    ipcMain.removeHandler(CALL_CHANNEL);
    ipcMain.removeListener(CANCEL_CHANNEL, onCancel);
    ipcMain.removeHandler(CHOOSE_FILE_CHANNEL);
    unsubscribe();
  };
}
