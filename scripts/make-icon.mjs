#!/usr/bin/env node
// Draws build/icon.png (256x256, RGBA): the app and tray icon, a stylised pause symbol in a ring.
// Generated rather than hand-drawn so it can be regenerated without an image editor.
import { deflateSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';

const N = 256;
const px = Buffer.alloc(N * N * 4);
for (let y = 0; y < N; y++) {
  for (let x = 0; x < N; x++) {
    const dx = x - N / 2 + 0.5, dy = y - N / 2 + 0.5;
    const r = Math.hypot(dx, dy);
    let rgba = [0, 0, 0, 0];
    if (r < 120) rgba = [36, 87, 197, 255];
    if (r < 104) rgba = [247, 247, 248, 255];
    const bar = (cx) => Math.abs(dx - cx) < 14 && Math.abs(dy) < 52;
    if (bar(-26) || bar(26)) rgba = [36, 87, 197, 255];
    // soft edge on the outer ring
    if (r >= 119 && r < 121) rgba[3] = Math.round(255 * (121 - r) / 2);
    px.set(rgba, (y * N + x) * 4);
  }
}
const raw = Buffer.alloc(N * (N * 4 + 1));
for (let y = 0; y < N; y++) { raw[y * (N * 4 + 1)] = 0; px.copy(raw, y * (N * 4 + 1) + 1, y * N * 4, (y + 1) * N * 4); }
const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
const chunk = (type, data) => {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
  return Buffer.concat([len, td, c]);
};
const ihdr = Buffer.alloc(13);
ihdr.writeUInt32BE(N, 0); ihdr.writeUInt32BE(N, 4); ihdr[8] = 8; ihdr[9] = 6; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
const png = Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
writeFileSync(new URL('../build/icon.png', import.meta.url), png);
console.log(`build/icon.png: ${png.length} bytes`);
