/**
 * What a collection right before a migration's window does to the scavenges inside it (tried on
 * branch `downtime` and not kept: in the migration itself a forced collection before the window was
 * followed by a major one inside it; docs/benchmarks.md, "Live migration"): a stand-in for the
 * last round, in one process. A heap whose young generation grew to its size, a
 * full collection (before the round), a live read that leaves survivors, then what is done before
 * the freeze: nothing, one or two scavenges, or a full collection; then the window: MIB of
 * short-lived allocations like the capture's interval lists. Prints, per way, the collections that
 * fell inside the window and their time (each way in its own child process, alternating, RUNS times).
 *
 *   node --import tsx bench/window-scavenge.ts [--runs 5] [--mib 12] [--survivors 300000]
 */
import { spawnSync } from 'node:child_process';
import { formatTable, type Row } from './table';
import { arg } from './args';

const runs = Number(arg('runs', '5'));
const mib = Number(arg('mib', '12'));
const survivors = Number(arg('survivors', '300000'));

const child = `
const v8=require('v8'),vm=require('vm');v8.setFlagsFromString('--expose-gc');const gc=vm.runInNewContext('gc');
const {PerformanceObserver}=require('perf_hooks');const es=[];new PerformanceObserver((l)=>{for(const e of l.getEntries())es.push(e);}).observe({entryTypes:['gc']});
const [n,mib,surv]=process.argv.slice(1).map(Number);
let keep=[];for(let i=0;i<3e6;i++){keep.push({a:i});if(keep.length>4e5)keep=[];}
setTimeout(()=>{
  gc();
  const live=[];for(let i=0;i<surv;i++)live.push({b:i});
  if(n===9)gc();else for(let k=0;k<n;k++)gc({type:'minor'});
  const t0=performance.now();
  let junk=[];for(let i=0;i<mib*32768;i++){junk.push({c:i+0.5});if(junk.length>1000)junk=[];}
  const t1=performance.now();
  setTimeout(()=>{const w=es.filter((e)=>e.startTime>=t0&&e.startTime<=t1);process.stdout.write(JSON.stringify({count:w.length,ms:w.reduce((a,e)=>a+e.duration,0),window:t1-t0,live:live.length}));},20);
},10);`;

// -1: a full collection; else that many scavenges.
const out = new Map<number, { count: number; ms: number; window: number }[]>([[0, []], [1, []], [2, []], [-1, []]]);
for (let r = 0; r < runs; r++) {
  for (const n of r % 2 ? [-1, 2, 1, 0] : [0, 1, 2, -1]) {
    const c = spawnSync(process.execPath, ['-e', child, String(n < 0 ? 9 : n), String(mib), String(survivors)], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(c.stderr);
    out.get(n)!.push(JSON.parse(c.stdout) as { count: number; ms: number; window: number });
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: Row[] = [...out].map(([n, xs]) => ({
  'before the window': n < 0 ? 'full collection' : `${n} scavenge(s)`, 'collections inside (median)': median(xs.map((x) => x.count)),
  'their ms (median)': +median(xs.map((x) => x.ms)).toFixed(2), 'runs ms': xs.map((x) => x.ms.toFixed(1)).join(', '),
  'window ms (median)': +median(xs.map((x) => x.window)).toFixed(1),
}));
process.stdout.write(`${formatTable(rows)}\n`);
