/** Placeholder for the Processes page (filled by a later issue): running processes you can checkpoint, and programs launched under Stasis. */
import { Page } from '../Page';

export function ProcessesPage() {
  return (
    <Page title="Processes">
      <p className="placeholder">This page will list running processes you can checkpoint, and programs launched under Stasis.</p>
    </Page>
  );
}
