/** Placeholder for the Checkpoints page (filled by a later issue): saved checkpoints: browse, compare, label, pin, restore. */
import { Page } from '../Page';

export function CheckpointsPage() {
  return (
    <Page title="Checkpoints">
      <p className="placeholder">This page will list saved checkpoints: browse, compare, label, pin, restore.</p>
    </Page>
  );
}
