/** The store: usage and savings (store.stats), block compression setting, verify and gc with their results, import of a stream file. */
import { useState } from 'react';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction, useEngine } from '../../components/engine';
import { toErrorData, type StasisErrorData } from '../../../../shared/errors';
import { CALL } from '../../components/calls';
import { Busy, Progress, Running } from '../../components/Status';
import { formatBytes, plural } from '../../components/format';
import type { StoreConfig, StoreStats } from '../../components/types';
import { transport } from '../../api';
import { chooseOpenPath, uploadImport } from '../../transfers';

interface VerifyResult { ok: boolean; problems: { what: string; where: string; affects: number[] }[] }

export function StorePanel({ onChanged }: { onChanged: () => void }) {
  const [stats, reloadStats] = useEngine<StoreStats>(CALL.stats);
  const [verified, setVerified] = useState<VerifyResult | null>(null);
  const [gc, setGc] = useState<{ bytesReclaimed: number; segmentsRewritten: number } | null>(null);
  const [file, setFile] = useState('');
  const [upload, setUpload] = useState<File | null>(null);
  const [sent, setSent] = useState<number | null>(null);
  const browser = transport === 'browser';
  const [imported, setImported] = useState<number[] | null>(null);
  const action = useAction();
  const [config, reloadConfig] = useEngine<StoreConfig>(CALL.storeConfig);
  const [configError, setConfigError] = useState<StasisErrorData | null>(null);
  const setCompression = async (compression: StoreConfig['compression']): Promise<void> => {
    setConfigError(null);
    try {
      await callEngine<StoreConfig>(CALL.storeConfigure, { compression });
    } catch (e) {
      setConfigError(toErrorData(e));
    }
    reloadConfig();
  };

  const doVerify = async (): Promise<void> => { setVerified(null); const r = await action.run((signal, onProgress) => callEngine<VerifyResult>(CALL.verify, {}, signal, onProgress)); if (r) setVerified(r); };
  const doGc = async (): Promise<void> => { setGc(null); const r = await action.run((signal, onProgress) => callEngine<{ bytesReclaimed: number; segmentsRewritten: number }>(CALL.gc, {}, signal, onProgress)); if (r) { setGc(r); reloadStats(); } };
  const doImport = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    setImported(null);
    const r = await action.run((signal, onProgress) => (browser && upload
      ? uploadImport(upload, signal, setSent, onProgress).finally(() => setSent(null))
      : callEngine<{ ids: number[] }>(CALL.importStream, { file: file.trim() }, signal, onProgress)));
    if (r) { setImported(r.ids); onChanged(); reloadStats(); }
  };

  const s = stats.value;
  return (
    <section className="panel" aria-labelledby="store-title">
      <h2 id="store-title">Store</h2>
      {stats.state === 'failed' ? <ErrorNote error={stats.error} onRetry={reloadStats} /> : null}
      {s ? (
        <dl className="facts compact" data-testid="store-stats">
          <dt>On disk</dt><dd>{formatBytes(s.storeBytes)} for {plural(s.checkpoints, 'checkpoint')} of {plural(s.targets, 'process', 'processes')}</dd>
          <dt>Memory saved</dt><dd>{formatBytes(s.logicalBytes)} in total</dd>
          <dt>Savings</dt><dd>deduplication ×{s.dedupRatio.toFixed(2)}, compression ×{s.compressionRatio.toFixed(2)} ({plural(s.uniquePages, 'unique page')})</dd>
        </dl>
      ) : stats.state === 'loading' ? <Busy>Reading store statistics…</Busy> : null}
      {config.value ? (
        <label className="inline-setting">
          Compress new checkpoints
          <select value={config.value.compression} onChange={(e) => void setCompression(e.target.value as StoreConfig['compression'])} aria-describedby="compression-note">
            <option value="none">No (fastest)</option>
            <option value="lz4">LZ4 (smaller, slower to save and restore)</option>
          </select>
        </label>
      ) : null}
      <p id="compression-note" className="hint">Applies to checkpoints saved from now on; existing ones stay readable as they are.</p>
      {configError ? <ErrorNote error={configError} /> : null}
      <div className="actions">
        <button type="button" className="secondary" onClick={doVerify} disabled={action.running}>Verify</button>
        <button type="button" className="secondary" onClick={doGc} disabled={action.running}>Collect garbage</button>
      </div>
      {sent !== null && !action.progress ? <Progress label={sent < 1 ? `Uploading: ${Math.floor(sent * 100)}%` : 'Importing…'} value={sent < 1 ? sent : undefined} /> : null}
      <Running action={action}>Working…</Running>
      {action.error ? <ErrorNote error={action.error} /> : null}
      {verified ? (
        verified.ok ? <p role="status">Verified: every checkpoint reads back intact.</p> : (
          <div role="alert"><p>Verify found {plural(verified.problems.length, 'problem')}:</p>
            <ul>{verified.problems.map((p, i) => <li key={i}>{p.what} at {p.where}{p.affects.length ? ` (affects #${p.affects.join(', #')})` : ''}</li>)}</ul></div>
        )
      ) : null}
      {gc ? <p role="status">Garbage collection reclaimed {formatBytes(gc.bytesReclaimed)} ({plural(gc.segmentsRewritten, 'segment')} rewritten).</p> : null}
      <form className="inline-form" onSubmit={doImport}>
        {browser ? (
          <label>Import stream file (uploaded)<input type="file" accept=".stasis,application/octet-stream" onChange={(e) => setUpload(e.target.files?.[0] ?? null)} required /></label>
        ) : (
          <>
            <label>Import stream file<input value={file} onChange={(e) => setFile(e.target.value)} placeholder="/path/to/checkpoint.stasis" required /></label>
            <button type="button" className="secondary" onClick={() => void chooseOpenPath().then((p) => { if (p) setFile(p); })}>Choose…</button>
          </>
        )}
        <button type="submit" disabled={action.running || (browser ? !upload : !file.trim())}>Import</button>
      </form>
      {imported ? <p role="status">Imported {plural(imported.length, 'checkpoint')}: #{imported.join(', #')}.</p> : null}
    </section>
  );
}
