/**
 * "Send to machine…": one checkpoint (with the chain it needs, flattened, or its whole tree) to a
 * Receive listener on another Stasis, given its HOST:PORT and pairing token; progress in bytes,
 * Cancel (the receiver then imports nothing), and the ids it got there. The token stays in this
 * dialog's state only.
 */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction } from '../../components/engine';
import { CALL } from '../../components/calls';
import { formatBytes, plural } from '../../components/format';
import { Running } from '../../components/Status';
import type { CheckpointInfo, SendResult } from '../../components/types';

type How = 'one' | 'flattened' | 'chain';

export function SendDialog({ checkpoint: c, onClose }: { checkpoint: CheckpointInfo; onClose: () => void }) {
  const [to, setTo] = useState('');
  const [token, setToken] = useState('');
  const [how, setHow] = useState<How>('one');
  const [result, setResult] = useState<SendResult | null>(null);
  const action = useAction();
  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await action.run((signal, onProgress) => callEngine<SendResult>(CALL.send, { id: c.id, to: to.trim(), token: token.trim(), how }, signal, onProgress));
    if (r) setResult(r);
  };
  return (
    <Dialog title={`Send checkpoint #${c.id} to another machine`} onClose={onClose}>
      {result ? (
        <>
          <p role="status" data-testid="send-result" data-received={result.received.join(',')}>
            Sent {result.checkpoints.map((i) => `#${i}`).join(', ')} ({plural(result.pages, 'page')}, {formatBytes(result.bytes)}). The receiver imported {result.received.length === 1 ? 'it' : 'them'} as <strong>{result.received.map((i) => `#${i}`).join(', ')}</strong>.
          </p>
          <div className="dialog-actions"><button type="button" onClick={onClose}>Close</button></div>
        </>
      ) : (
        <form className="form" onSubmit={submit}>
          <p className="hint">On the other machine open Receive, start listening, and copy its address and pairing token here. The checkpoint travels over TLS keyed by the token; the receiver imports it only once it arrived whole.</p>
          <label>Receiver (HOST:PORT)<input name="send-to" required value={to} onChange={(e) => setTo(e.target.value)} placeholder="10.0.0.5:7411" spellCheck={false} autoFocus /></label>
          <label>Pairing token<input name="send-token" required value={token} onChange={(e) => setToken(e.target.value)} placeholder="stasis1-…" spellCheck={false} autoComplete="off" /></label>
          <fieldset>
            <legend>What to send</legend>
            <label className="check"><input type="radio" name="how" checked={how === 'one'} onChange={() => setHow('one')} /> This checkpoint with the ancestors it needs</label>
            <label className="check"><input type="radio" name="how" checked={how === 'flattened'} onChange={() => setHow('flattened')} /> Flattened into one full checkpoint</label>
            <label className="check"><input type="radio" name="how" checked={how === 'chain'} onChange={() => setHow('chain')} /> Its whole tree (every checkpoint sharing its root)</label>
          </fieldset>
          {action.error ? <ErrorNote error={action.error} /> : null}
          <Running action={action}>Exporting and sending…</Running>
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose} disabled={action.running}>Close</button>
            <button type="submit" disabled={action.running}>Send</button>
          </div>
        </form>
      )}
    </Dialog>
  );
}
