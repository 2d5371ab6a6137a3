/** A new schedule: target (PID or launched name), timing, full-every, retention, label, and "also send to" another machine (address + pairing token, kept only in this dialog's state until created). */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { FormFooter } from '../../components/FormFooter';
import { api } from '../../api';
import { useAction } from '../../components/engine';
import { SendToFields, sendToInput, type SendToValue } from './SendToFields';

type Timing = 'interval' | 'cron' | 'manual';

export function AddScheduleDialog({ initialPid, onClose, onAdded }: { initialPid?: string; onClose: () => void; onAdded: () => void }) {
  const [targetKind, setTargetKind] = useState<'pid' | 'name'>('pid');
  const [target, setTarget] = useState(initialPid ?? '');
  const [timing, setTiming] = useState<Timing>('interval');
  const [every, setEvery] = useState('60');
  const [cron, setCron] = useState('*/15 * * * *');
  const [fullEvery, setFullEvery] = useState('0');
  const [keepLast, setKeepLast] = useState('10');
  const [label, setLabel] = useState('');
  const [sendTo, setSendTo] = useState<SendToValue>({ address: '', token: '' });
  const action = useAction();

  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await action.run(() => api.call('schedules.add', {
      target: targetKind === 'pid' ? { pid: Number(target) } : { name: target.trim() },
      timing: timing === 'interval' ? { kind: 'interval', everyMs: Math.round(Number(every) * 1000) } : timing === 'cron' ? { kind: 'cron', expr: cron.trim() } : { kind: 'manual' },
      fullEvery: Number(fullEvery) || 0,
      retention: keepLast.trim() ? { keepLast: Number(keepLast) } : {},
      label: label.trim() || null,
      sendTo: sendToInput(sendTo),
    }));
    if (r) { onAdded(); onClose(); }
  };

  return (
    <Dialog title="New schedule" onClose={onClose}>
      <form className="form" onSubmit={submit}>
        <fieldset>
          <legend>Target</legend>
          <label className="check"><input type="radio" name="tk" checked={targetKind === 'pid'} onChange={() => setTargetKind('pid')} /> A running process (by PID)</label>
          <label className="check"><input type="radio" name="tk" checked={targetKind === 'name'} onChange={() => setTargetKind('name')} /> A program launched by Stasis (by name; follows restarts)</label>
        </fieldset>
        <label>{targetKind === 'pid' ? 'PID' : 'Name'}<input autoFocus required value={target} onChange={(e) => setTarget(e.target.value)} inputMode={targetKind === 'pid' ? 'numeric' : 'text'} /></label>
        <label>When
          <select value={timing} onChange={(e) => setTiming(e.target.value as Timing)}>
            <option value="interval">At an interval</option><option value="cron">On a cron expression</option><option value="manual">Only when run by hand</option>
          </select>
        </label>
        {timing === 'interval' ? <label>Every (seconds, at least 1)<input type="number" min={1} required value={every} onChange={(e) => setEvery(e.target.value)} /></label> : null}
        {timing === 'cron' ? <label>Cron expression<input required value={cron} onChange={(e) => setCron(e.target.value)} /></label> : null}
        <label>A full checkpoint every N runs (0: only the first)<input type="number" min={0} value={fullEvery} onChange={(e) => setFullEvery(e.target.value)} /></label>
        <label>Keep the last N checkpoints (empty: keep all)<input type="number" min={0} value={keepLast} onChange={(e) => setKeepLast(e.target.value)} /></label>
        <label>Label (optional)<input value={label} onChange={(e) => setLabel(e.target.value)} /></label>
        <SendToFields legend="Also send to another machine (optional)" value={sendTo} onChange={setSendTo} />
        <FormFooter action={action} submit="Create" onCancel={onClose} />
      </form>
    </Dialog>
  );
}
