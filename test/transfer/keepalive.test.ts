// Both ends of the TLS link keep TCP keepalive on (tls-link.ts KEEPALIVE_MS), so an idle session
// (send --follow between checkpoints, a kept listener) notices a peer that vanished: ss shows a
// keepalive timer on each end of a real connection over 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { TLSSocket } from 'node:tls';
import { connect, listen, newToken } from '../../electron/engine/transfer/tls-link';

test('both ends of a pairing link run TCP keepalive', async () => {
  const { key } = newToken();
  let accepted: TLSSocket | null = null;
  const server = await listen({ host: '127.0.0.1', port: 0 }, key, (s) => { accepted = s; s.on('error', () => undefined); }, () => undefined);
  const port = (server.address() as { port: number }).port;
  const client = await connect({ host: '127.0.0.1', port }, key);
  try {
    for (let i = 0; i < 100 && !accepted; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(accepted, 'the listener took the connection');
    // ss shows the timer running now: the retransmission one while handshake bytes are in flight.
    let lines: string[] = [];
    for (let i = 0; i < 100; i++) {
      const ss = spawnSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} or dport = :${port} )`], { encoding: 'utf8' });
      assert.equal(ss.status, 0, ss.stderr);
      lines = ss.stdout.trim().split('\n').filter(Boolean);
      if (lines.length === 2 && lines.every((l) => /timer:\(keepalive,/.test(l))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(lines.length, 2, lines.join('\n'));
    for (const l of lines) assert.match(l, /timer:\(keepalive,/, `no keepalive timer: ${l}`);
  } finally {
    client.destroy();
    (accepted as TLSSocket | null)?.destroy();
    server.close();
  }
});
