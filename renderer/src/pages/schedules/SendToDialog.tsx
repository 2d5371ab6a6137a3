/**
 * Where a schedule also sends its checkpoints, set or changed after it was made: a receiver
 * started again prints a new pairing token, which only this dialog (or `stasis schedule edit
 * --send-to`) can give the schedule. The token is never shown back; the address is kept.
 */
import { useState } from 'react';
import type { ScheduleInfo } from '../../../../shared/contract/schedule';
import { Dialog } from '../../components/Dialog';
import { FormFooter } from '../../components/FormFooter';
import { api } from '../../api';
import { useAction } from '../../components/engine';
import { SendToFields, sendToInput, type SendToValue } from './SendToFields';

export function SendToDialog({ schedule, onClose, onSaved }: { schedule: ScheduleInfo; onClose: () => void; onSaved: () => void }) {
  const [value, setValue] = useState<SendToValue>({ address: schedule.sendTo?.address ?? '', token: '' });
  const action = useAction();
  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const sendTo = sendToInput(value);
    // Empty fields would stop sending: that is the row's own button, not a silent effect of Save.
    const r = await action.run(() => api.call('schedules.update', { id: schedule.id, sendTo: sendTo ?? { address: '', token: '' } }));
    if (r) { onSaved(); onClose(); }
  };
  return (
    <Dialog title={`Send schedule ${schedule.id}'s checkpoints to`} onClose={onClose}>
      <form className="form" onSubmit={submit}>
        <SendToFields legend={schedule.sendTo ? 'A new destination or pairing token' : 'Another machine'} value={value} onChange={setValue} />
        {schedule.sendTo ? <p className="hint">The send status starts over; the next run sends what the receiver lacks.</p> : null}
        <FormFooter action={action} submit="Save" onCancel={onClose} />
      </form>
    </Dialog>
  );
}
