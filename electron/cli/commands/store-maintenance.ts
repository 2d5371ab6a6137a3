/** Store maintenance commands: `stasis stats`, `store config`, `verify`, `gc`, `reindex`, and `export` / `import` of stream files. */
import { resolve } from 'node:path';
import { defineCommand } from '../command';
import { formatBytes } from '../../../shared/format';
import { StasisError } from '../../../shared/errors';
import { checkpointId } from './store-ids';

export default defineCommand('store-maintenance', (program, cli) => {
  program
    .command('stats')
    .description('store size on disk, logical size, dedup and compression ratios')
    .action(async () => {
      cli.print(await cli.call('store.stats', {}), (s) => [
        `Store ${s.dir}: ${s.checkpoints} checkpoint(s) of ${s.targets} target(s)`,
        `On disk ${formatBytes(s.storeBytes)} for ${formatBytes(s.logicalBytes)} of process memory (${s.uniquePages} unique pages)`,
        `Dedup ratio ${s.dedupRatio.toFixed(2)}x, compression ratio ${s.compressionRatio.toFixed(2)}x (new blocks: ${s.compression})`,
      ]);
    });

  program
    .command('store')
    .description('store settings')
    .command('config')
    .description('show or change store settings (they apply to what is written afterwards)')
    .option('--compression <kind>', 'how new page blocks are stored: lz4 or none')
    .option('--flatten-after <segments>', 're-flatten a new checkpoint whose pages come from more segment files than this (0: never)')
    .action(async (o: { compression?: string; flattenAfter?: string }) => {
      const patch: { compression?: 'lz4' | 'none'; flattenAfter?: number } = {};
      if (o.compression !== undefined) {
        if (o.compression !== 'lz4' && o.compression !== 'none') throw new StasisError('INVALID_INPUT', `--compression ${o.compression} is not known; give lz4 or none.`);
        patch.compression = o.compression;
      }
      if (o.flattenAfter !== undefined) {
        if (!/^\d+$/.test(o.flattenAfter)) throw new StasisError('INVALID_INPUT', `--flatten-after ${o.flattenAfter} is not a number of segments; give 0 (never) or more.`);
        patch.flattenAfter = Number(o.flattenAfter);
      }
      const r = Object.keys(patch).length ? await cli.call('store.configure', patch) : await cli.call('store.config', {});
      cli.print(r, (c) => [`Compression of new blocks: ${c.compression}.`, `Re-flatten a new checkpoint read from more than ${c.flattenAfter} segments: ${c.flattenAfter ? 'on' : 'off'}.`]);
    });

  program
    .command('verify')
    .description('check every checksum and record; name the damage and the checkpoints it affects')
    .action(async () => {
      const v = await cli.call('store.verify', {});
      cli.print(v, (x) => (x.ok ? 'Store is intact.' : x.problems.map((p) => `${p.where}: ${p.what}${p.affects.length ? ` (affects #${p.affects.join(', #')})` : ''}`)));
      if (!v.ok) cli.setExitCode(1);
    });

  program
    .command('gc')
    .description('reclaim space no checkpoint uses (compacts segment files)')
    .action(async () => {
      cli.print(await cli.call('store.gc', {}), (g) => `Reclaimed ${formatBytes(g.bytesReclaimed)} (${g.segmentsRewritten} segment file(s) rewritten or removed).`);
    });

  program
    .command('reindex')
    .description('rebuild the index from the segment files alone')
    .action(async () => {
      cli.print(await cli.call('store.reindex', {}), (r) => [`Rebuilt the index: ${r.checkpoints} checkpoint(s).`, ...r.problems.map((p) => `${p.where}: ${p.what}`)]);
    });

  program
    .command('export')
    .description('write a checkpoint as one stream file (with its ancestors, flattened, or its whole chain)')
    .argument('<id>', 'checkpoint id')
    .requiredOption('-o, --output <file>', 'stream file to write')
    .option('--flatten', 'one full checkpoint instead of the chain it needs')
    .option('--chain', 'the whole chain (every checkpoint sharing its root)')
    .action(async (idArg: string, o: { output: string; flatten?: boolean; chain?: boolean }) => {
      if (o.flatten && o.chain) throw new StasisError('INVALID_INPUT', 'Give --flatten or --chain, not both.');
      const how = o.flatten ? 'flattened' : o.chain ? 'chain' : 'one';
      const r = await cli.call('checkpoints.export', { id: checkpointId(idArg), file: resolve(o.output), how });
      cli.print(r, (x) => `Wrote ${x.file}: ${x.checkpoints.length} checkpoint(s), ${x.pages} pages, ${formatBytes(x.bytes)}.`);
    });

  program
    .command('import')
    .description('import a stream file (validated completely first; deduplicated)')
    .argument('<file>', 'stream file')
    .action(async (file: string) => {
      const r = await cli.call('checkpoints.import', { file: resolve(file) });
      cli.print(r, (x) => `Imported checkpoint(s) ${x.ids.map((i) => `#${i}`).join(', ')}.`);
    });
});
