// The desktop app's IPC gate: only our window's top frame, showing our page, reaches the engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTrustedSender, type SenderFacts } from '../../electron/main/sender-check';

const pageUrl = 'file:///opt/Stasis/resources/app.asar/dist/renderer/index.html';
const ok: SenderFacts = { window: { destroyed: false, contentsId: 7 }, senderId: 7, frame: { url: `${pageUrl}#/status`, isMain: true }, pageUrl };

test('our window, top frame, our page (any #route): trusted', () => {
  assert.equal(isTrustedSender(ok), true);
  assert.equal(isTrustedSender({ ...ok, frame: { url: pageUrl, isMain: true } }), true);
});

test('anything else is refused', () => {
  assert.equal(isTrustedSender({ ...ok, senderId: 8 }), false, 'another webContents');
  assert.equal(isTrustedSender({ ...ok, window: null }), false, 'window gone');
  assert.equal(isTrustedSender({ ...ok, window: { destroyed: true, contentsId: 7 } }), false, 'window destroyed');
  assert.equal(isTrustedSender({ ...ok, frame: null }), false, 'frame disposed');
  assert.equal(isTrustedSender({ ...ok, frame: { url: pageUrl, isMain: false } }), false, 'a subframe');
  assert.equal(isTrustedSender({ ...ok, frame: { url: 'https://evil.example/#/status', isMain: true } }), false, 'navigated away');
  assert.equal(isTrustedSender({ ...ok, frame: { url: `${pageUrl}?x=1`, isMain: true } }), false, 'query string added');
  assert.equal(isTrustedSender({ ...ok, frame: { url: 'file:///tmp/index.html', isMain: true } }), false, 'another local file');
});
