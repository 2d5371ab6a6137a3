// A TCP relay for transfer tests: counts the bytes each connection carries each way, and on its
// first connection can cut the link (--cut N: the sender's side reset once N bytes went up, the
// receiver's side ended after them), damage it (--flip N: byte N going up is inverted) or stall
// it (--hold N: nothing more goes up after N bytes, the connection stays open). Prints
// "listening PORT" once, then one line per closed connection: "conn I up BYTES down BYTES".
// --port P listens on P (default: any free port), so a relay stopped can come back on the same address.
// Runs inside a test's network namespace.
//   node cut-proxy.mjs LISTEN_HOST TO_HOST TO_PORT [--cut N] [--flip N] [--hold N] [--port P]
import * as net from 'node:net';

const [host, toHost, toPort, ...rest] = process.argv.slice(2);
const opt = (name) => { const i = rest.indexOf(name); return i < 0 ? -1 : Number(rest[i + 1]); };
const cutAt = opt('--cut');
const flipAt = opt('--flip');
const holdAt = opt('--hold');
let conns = 0;

const server = net.createServer((client) => {
  const n = conns++;
  const first = n === 0;
  let up = 0;
  let down = 0;
  const upstream = net.connect(Number(toPort), toHost);
  // A cut delivers what went up before it (end, not destroy: the receiver sees its input stop there).
  let cut = false;
  const done = () => { client.destroy(); if (cut) upstream.end(); else upstream.destroy(); };
  let reported = false;
  const report = () => { if (!reported) { reported = true; process.stdout.write(`conn ${n} up ${up} down ${down}\n`); } };
  client.on('close', () => { done(); report(); });
  upstream.on('close', () => { done(); report(); });
  client.on('error', done);
  upstream.on('error', done);
  client.on('data', (d) => {
    let chunk = d;
    if (first && flipAt >= 0 && up <= flipAt && flipAt < up + d.length) {
      chunk = Buffer.from(d);
      chunk[flipAt - up] ^= 0xff;
    }
    if (first && holdAt >= 0 && up + d.length >= holdAt) {
      if (up < holdAt) upstream.write(chunk.subarray(0, holdAt - up));
      up = Math.max(up, holdAt);
      return;
    }
    if (first && cutAt >= 0 && up + d.length >= cutAt) {
      upstream.write(chunk.subarray(0, cutAt - up));
      up = cutAt;
      cut = true;
      done();
      return;
    }
    up += chunk.length;
    upstream.write(chunk);
  });
  upstream.on('data', (d) => { down += d.length; client.write(d); });
});
server.listen(Math.max(0, opt('--port')), host, () => process.stdout.write(`listening ${server.address().port}\n`));
