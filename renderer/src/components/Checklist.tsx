/** A pre-flight checklist as the engine answered it: each check passes or fails with its reason, and a fix when it fails. */
import { YesNo } from './Status';
import type { PreflightItem } from './types';

export function Checklist({ items, label = 'Pre-flight checklist' }: { items: PreflightItem[]; label?: string }) {
  return (
    <ul className="checklist" aria-label={label}>
      {items.map((i) => (
        <li key={i.id} className={i.ok ? 'ok' : 'fail'} data-testid="preflight-item" data-ok={i.ok}>
          <YesNo ok={i.ok} yes="Pass" no="Fail" /> <strong>{i.label}</strong> <span className="reason">{i.reason}</span>
          {!i.ok && i.fix ? <div className="fix">Fix: {i.fix}</div> : null}
        </li>
      ))}
    </ul>
  );
}
