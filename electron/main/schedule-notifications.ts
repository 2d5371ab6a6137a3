/**
 * Desktop notifications for scheduled checkpoints that need the user's attention (wording and
 * selection in engine/schedule/notices.ts). Clicking one opens the window. Shows notifications only.
 */
import { Notification } from 'electron';
import { scheduleNotice } from '../engine/schedule/notices';

export function notifyScheduleEvent(event: string, payload: unknown, onClick: () => void): void {
  const notice = scheduleNotice(event, payload);
  if (!notice || !Notification.isSupported()) return;
  const n = new Notification({ title: notice.title, body: notice.body });
  n.on('click', onClick);
  n.show();
}
