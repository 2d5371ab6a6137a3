/**
 * Files between the user's browser and the engine, which writes and reads files on its own machine.
 * Browser mode: export into a single-use download (POST /api/export, then a link to
 * /api/download/<id>) and import by upload (POST /api/import). Electron: native save/open dialogs
 * through the preload, and the path-based calls. Browser code only: no Node, no Electron.
 */
import type { StasisBridge } from '../../shared/contract/engine';
import type { Reply } from '../../shared/contract';
import { StasisError, toErrorData } from '../../shared/errors';

export type ExportKind = 'core' | 'one' | 'flattened' | 'chain';
export interface PreparedDownload { downloadId: string; filename: string; bytes: number; url: string }

async function post<T>(path: string, body: BodyInit, contentType: string, what: string, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { method: 'POST', headers: { 'Content-Type': contentType }, body, credentials: 'same-origin', ...(signal ? { signal } : {}) });
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
export function prepareDownload(id: number, kind: ExportKind, signal?: AbortSignal): Promise<PreparedDownload> {
  return post<PreparedDownload>('/api/export', JSON.stringify({ id, kind }), 'application/json', 'The export', signal);
}

/** Browser mode: uploads a stream file and imports it; the upload is deleted afterwards. */
export function uploadImport(file: Blob, signal?: AbortSignal): Promise<{ ids: number[] }> {
  return post<{ ids: number[] }>('/api/import', file, 'application/octet-stream', 'The import', signal);
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
