/** Placeholder for the Schedules page (filled by a later issue): automatic checkpoints on a timer, with retention. */
import { Page } from '../Page';

export function SchedulesPage() {
  return (
    <Page title="Schedules">
      <p className="placeholder">This page will list automatic checkpoints on a timer, with retention.</p>
    </Page>
  );
}
