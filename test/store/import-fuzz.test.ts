/**
 * Import fuzz test: thousands of mutated, truncated and re-checksummed hostile streams. Every
 * import must either succeed consistently or fail with a StasisError naming the problem: never
 * another exception, a hang or a large allocation; and a failed import leaves no trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { openStore } from '../../electron/engine/store';
import { StasisError } from '../../shared/errors';
import { mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const MUTATIONS = 3000;
const TIME_BUDGET_MS = 40_000;
const RSS_BUDGET = 300 * 1024 * 1024;

/** Rebuilds header lengths and the whole-file checksum so the deep validation is what gets tested. */
function reseal(manifest: Buffer, pages: Buffer, pageCount: number): Buffer {
  const h = Buffer.alloc(32);
  h.write('STASSTR\0', 0, 'latin1');
  h.writeUInt32LE(1, 8);
  h.writeUInt32LE(4096, 12);
  h.writeBigUInt64LE(BigInt(manifest.length), 16);
  h.writeBigUInt64LE(BigInt(pageCount), 24);
  const body = Buffer.concat([h, manifest, pages]);
  return Buffer.concat([body, createHash('sha256').update(body).digest(), Buffer.from('STASSEND', 'latin1')]);
}

const hostile: unknown[] = [null, -1, 0, 1.5, 2 ** 53, 1e308, -1e308, '', 'x'.repeat(1000), [], {}, [[0, 1, 0, 0]], { $big: '1' }, true, [[2 ** 40, 2 ** 31, 0, 0]], [[0, 1, 7, 0]], [[5, 1, 0, 0], [0, 1, 0, 0]], [[0, 1, 0, 999999]]];

function mutateJson(r: () => number, v: unknown, depth = 0): unknown {
  if (Array.isArray(v)) {
    if (v.length === 0 || r() < 0.2) return hostile[Math.floor(r() * hostile.length)];
    const c = [...v];
    const i = Math.floor(r() * c.length);
    if (r() < 0.15) c.splice(i, 1); else c[i] = mutateJson(r, c[i], depth + 1);
    return c;
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0 || r() < 0.15) return hostile[Math.floor(r() * hostile.length)];
    const c = { ...(v as Record<string, unknown>) };
    const k = keys[Math.floor(r() * keys.length)];
    if (r() < 0.1) delete c[k]; else c[k] = mutateJson(r, c[k], depth + 1);
    return c;
  }
  return hostile[Math.floor(r() * hostile.length)];
}

test(`import survives ${MUTATIONS} mutated, truncated and hostile streams with clear errors only`, () => {
  const t = tempDir('stasis-fuzz-');
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const r = rng(4242);
    const tg = src.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: ['a'] });
    const v1: View = new Map([[0x10, randomPage(r)], [0x11, Buffer.alloc(4096)], [0x12, randomPage(r)], [0x13, randomPage(r)]]);
    const id1 = writeComplete(src, tg.id, null, v1, [mapping(0x10, 4)]);
    const v2: View = new Map(v1);
    v2.set(0x12, randomPage(r));
    v2.delete(0x13);
    const id2 = writeComplete(src, tg.id, id1, v2, [mapping(0x10, 3)]);
    const good = fs.readFileSync(src.exportStream(id2, path.join(t.dir, 'good.stream')).file);
    src.close();
    const mlen = Number(good.readBigUInt64LE(16));
    const pageCount = Number(good.readBigUInt64LE(24));
    const manifest = JSON.parse(good.subarray(32, 32 + mlen).toString('utf8')) as unknown;
    const pages = good.subarray(32 + mlen, good.length - 40);

    const dst = openStore(path.join(t.dir, 'dst'));
    const file = path.join(t.dir, 'fuzz.stream');
    const started = Date.now();
    const rss0 = process.memoryUsage().rss;
    const outcomes = new Map<string, number>();
    const imported: number[] = [];
    for (let i = 0; i < MUTATIONS; i++) {
      let bytes: Buffer;
      const kind = r();
      if (kind < 0.25) { // raw byte flips
        bytes = Buffer.from(good);
        for (let k = 1 + Math.floor(r() * 4); k > 0; k--) bytes[Math.floor(r() * bytes.length)] ^= 1 + Math.floor(r() * 255);
      } else if (kind < 0.4) { // truncation or trailing garbage
        bytes = r() < 0.7 ? good.subarray(0, Math.floor(r() * good.length)) : Buffer.concat([good, Buffer.alloc(1 + Math.floor(r() * 5000), 7)]);
      } else if (kind < 0.5) { // header lies, re-checksummed (huge counts, huge manifest length)
        bytes = Buffer.from(good);
        const at = [16, 24][Math.floor(r() * 2)];
        bytes.writeBigUInt64LE(BigInt(Math.floor(r() * 2 ** 52)), at);
        const body = bytes.subarray(0, bytes.length - 40);
        createHash('sha256').update(body).digest().copy(bytes, bytes.length - 40);
      } else if (kind < 0.6) { // page bytes changed, re-checksummed
        const p = Buffer.from(pages);
        p[Math.floor(r() * p.length)] ^= 0x10;
        bytes = reseal(good.subarray(32, 32 + mlen), p, pageCount);
      } else if (kind < 0.7) { // manifest bytes scrambled, re-checksummed
        const m = Buffer.from(good.subarray(32, 32 + mlen));
        for (let k = 1 + Math.floor(r() * 3); k > 0; k--) m[Math.floor(r() * m.length)] = Math.floor(r() * 256);
        bytes = reseal(m, pages, pageCount);
      } else { // structurally hostile manifest, re-checksummed
        bytes = reseal(Buffer.from(JSON.stringify(mutateJson(r, manifest))), pages, pageCount);
      }
      fs.writeFileSync(file, bytes);
      try {
        const res = dst.importStream(file);
        imported.push(...res.ids);
        outcomes.set('imported', (outcomes.get('imported') ?? 0) + 1);
      } catch (e) {
        if (!(e instanceof StasisError) || !['CORRUPT', 'INVALID_INPUT', 'UNSUPPORTED'].includes(e.code)) {
          throw new Error(`mutation ${i} (kind ${kind.toFixed(2)}) raised a non-Stasis error: ${(e as Error).stack}`, { cause: e });
        }
        assert.ok(e.message.length > 20 && /Nothing was imported/.test(e.message), e.message);
        const key = e.message.replace(/^The stream \S+ is not valid: /, '').replace(/\d+/g, 'N').slice(0, 50);
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      assert.ok(Date.now() - started < TIME_BUDGET_MS, `fuzzing exceeded ${TIME_BUDGET_MS} ms at mutation ${i}`);
    }
    const grew = process.memoryUsage().rss - rss0;
    assert.ok(grew < RSS_BUDGET, `memory grew by ${grew} bytes`);
    // Whatever got through is a consistent checkpoint: listed, readable, verified.
    for (const id of imported) materializeToMap(dst, id);
    assert.deepEqual(dst.list().map((c) => c.id).sort((a, b) => a - b), [...imported].sort((a, b) => a - b));
    assert.equal(dst.verify().ok, true);
    assert.equal(fs.readdirSync(path.join(t.dir, 'dst', 'segments')).filter((n) => n.endsWith('.tmp')).length, 0);
    assert.ok((outcomes.get('imported') ?? 0) < MUTATIONS / 2, 'most mutations must be refused');
    process.stderr.write(`fuzz outcomes (${Date.now() - started} ms, rss +${Math.round(grew / 1048576)} MiB): ${JSON.stringify(Object.fromEntries([...outcomes].sort((a, b) => b[1] - a[1])))}\n`);
    dst.close();
  } finally {
    t.cleanup();
  }
});
