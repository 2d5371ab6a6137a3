/**
 * Export one checkpoint as an ELF core file (restore.core) or a stream file (checkpoints.export).
 * Browser mode: the engine writes it into the store and the browser downloads it once (Download
 * link). Electron: a path on this machine, chosen with the native save dialog or typed.
 */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction } from '../../components/engine';
import { CALL } from '../../components/calls';
import { formatBytes } from '../../components/format';
import { Running } from '../../components/Status';
import type { CheckpointInfo } from '../../components/types';
import { transport } from '../../api';
import { chooseSavePath, prepareDownload, type PreparedDownload } from '../../transfers';

type Kind = 'core' | 'one' | 'flattened' | 'chain';

export function ExportDialog({ checkpoint: c, onClose }: { checkpoint: CheckpointInfo; onClose: () => void }) {
  const [kind, setKind] = useState<Kind>('core');
  const [path, setPath] = useState(`/tmp/stasis-${c.id}.core`);
  const [done, setDone] = useState<{ path: string; bytes: number } | null>(null);
  const [download, setDownload] = useState<PreparedDownload | null>(null);
  const browser = transport === 'browser';
  const action = useAction();
  const pick = (k: Kind): void => { setKind(k); setPath(`/tmp/stasis-${c.id}.${k === 'core' ? 'core' : 'stasis'}`); };
  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    if (browser) {
      const d = await action.run((signal, onProgress) => prepareDownload(c.id, kind, signal, onProgress));
      if (d) setDownload(d);
      return;
    }
    const r = await action.run(async (signal, onProgress) => {
      if (kind === 'core') {
        const o = await callEngine<{ path: string; bytes: number }>(CALL.core, { id: c.id, output: path }, signal);
        return { path: o.path, bytes: o.bytes };
      }
      const o = await callEngine<{ file: string; bytes: number }>(CALL.exportStream, { id: c.id, file: path, how: kind }, signal, onProgress);
      return { path: o.file, bytes: o.bytes };
    });
    if (r) setDone(r);
  };
  return (
    <Dialog title={`Export checkpoint #${c.id}`} onClose={onClose}>
      {download ? (
        <>
          <p role="status">Ready: <code>{download.filename}</code> ({formatBytes(download.bytes)}). The link works once and for ten minutes.</p>
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose}>Close</button>
            <a className="button" href={download.url} download={download.filename} data-testid="download-link">Download</a>
          </div>
        </>
      ) : done ? (
        <>
          <p role="status">Wrote <code>{done.path}</code> ({formatBytes(done.bytes)}).{kind === 'core' ? ' Open it with gdb EXE FILE.' : ' Import it into another store with “Import stream”.'}</p>
          <div className="dialog-actions"><button type="button" onClick={onClose}>Close</button></div>
        </>
      ) : (
        <form className="form" onSubmit={submit}>
          <fieldset>
            <legend>What to write</legend>
            <label className="check"><input type="radio" name="kind" checked={kind === 'core'} onChange={() => pick('core')} /> ELF core file (for gdb)</label>
            <label className="check"><input type="radio" name="kind" checked={kind === 'one'} onChange={() => pick('one')} /> Stream: this checkpoint with its ancestors</label>
            <label className="check"><input type="radio" name="kind" checked={kind === 'flattened'} onChange={() => pick('flattened')} /> Stream: flattened into one full checkpoint</label>
            <label className="check"><input type="radio" name="kind" checked={kind === 'chain'} onChange={() => pick('chain')} /> Stream: its whole tree</label>
          </fieldset>
          {browser ? <p className="hint">The engine writes the file; you then download it.</p> : (
            <div className="inline-form">
              <label>Save to (a path on this machine)<input required value={path} onChange={(e) => setPath(e.target.value)} /></label>
              <button type="button" className="secondary" onClick={() => void chooseSavePath(path.split('/').pop() ?? '').then((p) => { if (p) setPath(p); })}>Choose…</button>
            </div>
          )}
          {action.error ? <ErrorNote error={action.error} /> : null}
          <Running action={action}>Writing…</Running>
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose} disabled={action.running}>Close</button>
            <button type="submit" disabled={action.running}>Export</button>
          </div>
        </form>
      )}
    </Dialog>
  );
}
