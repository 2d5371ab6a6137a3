/**
 * Whether an IPC message may reach the engine: it must come from the top frame of our own window,
 * showing our own page (not a navigated-away or injected frame). Pure, so it is testable without
 * Electron; ipc.ts applies it to every call.
 */
export interface SenderFacts {
  /** The window we created, or null when it is gone. */
  window: { destroyed: boolean; contentsId: number } | null;
  /** The webContents that sent the message. */
  senderId: number;
  /** The frame that sent it: null when it was disposed; isMain for the top frame. */
  frame: { url: string; isMain: boolean } | null;
  /** file:// URL of our index.html. */
  pageUrl: string;
}

export function isTrustedSender(f: SenderFacts): boolean {
  if (!f.window || f.window.destroyed || f.senderId !== f.window.contentsId) return false;
  if (!f.frame || !f.frame.isMain) return false;
  // Only the fragment may differ (the shell routes with #/page).
  return f.frame.url.split('#')[0] === f.pageUrl;
}
