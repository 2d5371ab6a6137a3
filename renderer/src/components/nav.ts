/**
 * Cross-page intents ("show checkpoint 12", "find PID 4321") handed from one screen to the next:
 * the shell's hash routes carry only the page, so the intent waits here until the page reads it.
 */
export interface Intent { checkpointId?: number; targetId?: number; search?: string }

let pending: Intent | null = null;

export function go(page: string, intent: Intent = {}): void {
  pending = intent;
  location.hash = `#/${page}`;
}

/** The intent for the page being opened, once. */
export function takeIntent(): Intent {
  const i = pending ?? {};
  pending = null;
  return i;
}
