/** The "also send to another machine" fields (address + pairing token) of a schedule, shared by the New schedule and Send to dialogs. */
import type { SendToInput } from '../../../../shared/contract/schedule';

export interface SendToValue { address: string; token: string }

export function SendToFields({ value, onChange, legend }: { value: SendToValue; onChange: (v: SendToValue) => void; legend: string }) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      <p className="hint">Each checkpoint is sent in the background to a Stasis kept listening there (Receive → Keep listening, or <code>stasis receive --listen HOST:PORT --keep</code>); only the pages it lacks travel. A failed send never fails the checkpoint: it is tried again on its own, and catches up.</p>
      <label>Address (HOST:PORT)<input name="send-to" value={value.address} onChange={(e) => onChange({ ...value, address: e.target.value })} spellCheck={false} placeholder="10.0.0.5:7411" /></label>
      <label>Pairing token<input name="send-token" type="password" autoComplete="off" value={value.token} onChange={(e) => onChange({ ...value, token: e.target.value })} spellCheck={false} placeholder="stasis1-…" /></label>
    </fieldset>
  );
}

/** Both empty: no destination; anything else goes to the contract, which names what is wrong. */
export function sendToInput(v: SendToValue): SendToInput | null {
  return v.address.trim() || v.token.trim() ? { address: v.address.trim(), token: v.token.trim() } : null;
}
