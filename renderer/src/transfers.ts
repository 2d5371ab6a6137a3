/**
 * Files between the user's browser and the engine, which writes and reads files on its own machine.
 * Browser mode: export into a single-use download (POST /api/export, then a link to
 * /api/download/<id>) and import by upload (POST /api/import). Electron: native save/open dialogs
 * through the preload, and the path-based calls. Browser code only: no Node, no Electron.
 */
import type { OpProgress, StasisBridge } from '../../shared/contract/engine';
import { followProgress, newCallId } from './api';
import type { Reply } from '../../shared/contract';
import { StasisError, toErrorData } from '../../shared/errors';

export type ExportKind = 'core' | 'one' | 'flattened' | 'chain';
export interface PreparedDownload { downloadId: string; filename: string; bytes: number; url: string }

async function post<T>(path: string, body: BodyInit, contentType: string, what: string, signal?: AbortSignal, callId?: string): Promise<T> {
  let res: Response;
  try {
    const headers: Record<string, string> = { 'Content-Type': contentType, ...(callId ? { 'X-Stasis-Call': callId } : {}) };
    res = await fetch(path, { method: 'POST', headers, body, credentials: 'same-origin', ...(signal ? { signal } : {}) });
  } catch (err) {
    if (signal?.aborted) throw new StasisError('CANCELLED', `${what} was cancelled.`);
    throw new StasisError('INTERNAL', `Could not reach the Stasis server (${err instanceof Error ? err.message : String(err)}); is it still running?`);
  }
  let reply: Reply<T>;
  try { reply = (await res.json()) as Reply<T>; } catch {
    if (signal?.aborted) throw new StasisError('CANCELLED', `${what} was cancelled.`);
    throw new StasisError('INTERNAL', `The Stasis server answered ${res.status} without a JSON reply.`);
  }
  if (reply.ok) return reply.value;
  const e = toErrorData(reply.error);
  throw new StasisError(e.code, e.message, e.detail);
}

/** Browser mode: the engine writes the export into the store; the returned url downloads it once. */
export function prepareDownload(id: number, kind: ExportKind, signal?: AbortSignal, onProgress?: (p: OpProgress) => void): Promise<PreparedDownload> {
  const callId = newCallId();
  const stop = followProgress(callId, onProgress);
  return post<PreparedDownload>('/api/export', JSON.stringify({ id, kind }), 'application/json', 'The export', signal, callId).finally(stop);
}

/**
 * Browser mode: uploads a stream file and imports it; the upload is deleted afterwards. XHR, not
 * fetch: only XHR reports upload progress (onProgress gets 0..1 while the bytes go out, then 1
 * while the engine imports; onImport then gets the engine's own progress of the import).
 */
export function uploadImport(file: Blob, signal?: AbortSignal, onProgress?: (fraction: number) => void, onImport?: (p: OpProgress) => void): Promise<{ ids: number[] }> {
  const callId = newCallId();
  const stop = followProgress(callId, onImport);
  return new Promise<{ ids: number[] }>((resolve, reject) => {
    if (signal?.aborted) { reject(new StasisError('CANCELLED', 'The import was cancelled.')); return; }
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/import');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('X-Stasis-Call', callId);
    xhr.withCredentials = true;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && e.total > 0) onProgress?.(e.loaded / e.total); };
    xhr.upload.onload = () => onProgress?.(1);
    const onAbort = (): void => xhr.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (fn: () => void): void => { signal?.removeEventListener('abort', onAbort); fn(); };
    xhr.onabort = () => settle(() => reject(new StasisError('CANCELLED', 'The import was cancelled.')));
    xhr.onerror = () => settle(() => reject(new StasisError('INTERNAL', 'Could not reach the Stasis server during the upload; is it still running?')));
    xhr.onload = () => settle(() => {
      let reply: Reply<{ ids: number[] }>;
      try { reply = JSON.parse(xhr.responseText) as Reply<{ ids: number[] }>; } catch {
        reject(new StasisError('INTERNAL', `The Stasis server answered ${xhr.status} without a JSON reply.`));
        return;
      }
      if (reply.ok) resolve(reply.value);
      else { const e = toErrorData(reply.error); reject(new StasisError(e.code, e.message, e.detail)); }
    });
    xhr.send(file);
  }).finally(stop);
}

const bridge = (): StasisBridge | undefined => window.stasis;

/** Electron: the native save dialog; null when cancelled or not in Electron. */
export async function chooseSavePath(defaultName: string): Promise<string | null> {
  return (await bridge()?.chooseFile?.('save', defaultName)) ?? null;
}

/** Electron: the native open dialog for a stream file; null when cancelled or not in Electron. */
export async function chooseOpenPath(): Promise<string | null> {
  return (await bridge()?.chooseFile?.('open', '')) ?? null;
}
