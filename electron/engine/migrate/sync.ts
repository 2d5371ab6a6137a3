/**
 * Replication sessions (`stasis send ID --to`, `stasis send PID --follow`): the sender asks which
 * checkpoints of the chain the receiver already holds, then sends only the rest, each as a stream
 * negotiated by page hash (negotiate.ts): the first one the receiver lacks entirely as the chain
 * it needs, every later one as a continuation of the receiver's copy of its parent. A checkpoint
 * is known on the receiver by its process (pid, start time) and its creation time, which an import
 * keeps. A broken connection is reconnected and the transfer resumed (the receiver's spool holds
 * what fully arrived); imports stay all-or-nothing per stream, so the receiver's store is always
 * a valid prefix of the chain. Owns the session, not the link: `open` gives a fresh one.
 */
import type { Readable, Writable } from 'node:stream';
import { hostname } from 'node:os';
import { StasisError, toErrorData } from '../../../shared/errors';
import type { Store } from '../store/api';
import { acceptStream, offerStream, type AcceptDeps, type AcceptResult } from './negotiate';
import { FrameReader, FrameWriter, SYNC_MAGIC } from './wire';

const PROTO = 1;

export interface SyncLink { input: Readable; output: Writable; close(): Promise<void> }

interface Identity { ref: number; pid: number; startTime: string; createdAt: string }

export interface SentCheckpoint {
  /** This store's checkpoint and the receiver's id of it. */
  id: number;
  remote: number;
  /** True when the receiver held it already (nothing sent). */
  already: boolean;
  /** This store's checkpoints sent for it, and the receiver's ids of what it imported. */
  checkpoints: number[];
  imported: number[];
  /** Streams sent for it (the chain it needed, or continuations). */
  streams: number;
  pages: number;
  pagesSent: number;
  pagesHeld: number;
  pagesResumed: number;
}

export interface SenderOptions {
  /** Ends retries and waits (Ctrl-C). */
  signal?: AbortSignal;
  /** How long to keep reconnecting after a break before giving up (default 60 s; Infinity for --follow). */
  retryMs?: number;
  /** Told about each break and reconnection, for the user. */
  onRetry?: (why: string, attempt: number) => void;
}

function identity(store: Store, id: number): Identity {
  const c = store.get(id);
  const t = c ? store.getTarget(c.targetId) : null;
  if (!c || !t) throw new StasisError('NOT_FOUND', `There is no checkpoint #${id}.`);
  return { ref: id, pid: t.pid, startTime: t.startTime, createdAt: c.createdAt };
}

/** A failure the same request would meet again: the receiver's refusal, a wrong token, a bad address. */
function isFinal(e: unknown): boolean {
  const m = (e as Error).message ?? '';
  return /^The destination says|refused the pairing token|is not HOST:PORT|is not a pairing token/.test(m) || (e instanceof StasisError && ['NOT_FOUND', 'CANCELLED'].includes(e.code));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The sending end: one session at a time, reopened after a break. */
export class SyncSender {
  /** Bytes written on every connection so far (frame headers included). */
  wireBytes = 0;
  private session: { rd: FrameReader; wr: FrameWriter; link: SyncLink } | null = null;
  /** Retries are for a link that broke: a receiver never reached is a clear error at once. */
  private reached = false;
  /** The receiver takes each stream's footer after its pages (a receiver from before it did not). */
  private footerLast = false;
  /** The receiver reads streams of versions 3 and 4 (checksum over the page hashes); one from before them gets 1 and 2. */
  private checksum: 'hashes' | 'bytes' = 'bytes';

  constructor(private readonly store: Store, private readonly open: () => Promise<SyncLink>, private readonly opts: SenderOptions = {}) {
  }

  private async connected(): Promise<{ rd: FrameReader; wr: FrameWriter }> {
    if (this.session) return this.session;
    const link = await this.open();
    this.reached = true;
    const rd = new FrameReader(link.input);
    const wr = new FrameWriter(link.output);
    this.session = { rd, wr, link };
    await wr.magic(SYNC_MAGIC);
    await wr.send({ t: 'hello', proto: PROTO });
    const hi = await rd.expect<{ footerLast?: unknown; hashChecksum?: unknown }>('hello');
    this.footerLast = hi.footerLast === true;
    this.checksum = hi.hashChecksum === true ? 'hashes' : 'bytes';
    return this.session;
  }

  private async drop(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (!s) return;
    this.wireBytes += s.wr.bytes;
    await s.link.close().catch(() => undefined);
  }

  /** Sends checkpoint id (and what of its chain the receiver lacks); reconnects and resumes after a break. */
  async send(id: number): Promise<SentCheckpoint> {
    const deadline = Date.now() + (this.opts.retryMs ?? 60_000);
    // Ctrl-C mid-transfer cuts the link: the receiver keeps what fully arrived, to resume from.
    const cut = (): void => { this.session?.link.output.destroy(); this.session?.link.input.destroy(); };
    this.opts.signal?.addEventListener('abort', cut, { once: true });
    try {
      return await this.sendRetrying(id, deadline);
    } finally {
      this.opts.signal?.removeEventListener('abort', cut);
    }
  }

  private async sendRetrying(id: number, deadline: number): Promise<SentCheckpoint> {
    for (let attempt = 1; ; attempt++) {
      if (this.opts.signal?.aborted) throw new StasisError('CANCELLED', `Sending checkpoint #${id} was stopped; the receiver keeps what fully arrived and a new send resumes from it.`);
      try {
        const s = await this.connected();
        return await this.sendOn(s.rd, s.wr, id);
      } catch (e) {
        await this.drop();
        if (this.opts.signal?.aborted) throw new StasisError('CANCELLED', `Sending checkpoint #${id} was stopped; the receiver keeps what fully arrived and a new send resumes from it.`);
        if (isFinal(e) || !this.reached || Date.now() >= deadline) throw e;
        this.opts.onRetry?.((e as Error).message, attempt);
        await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt - 1, 5)), this.opts.signal);
      }
    }
  }

  private async sendOn(rd: FrameReader, wr: FrameWriter, id: number): Promise<SentCheckpoint> {
    const info = this.store.get(id);
    if (!info) throw new StasisError('NOT_FOUND', `There is no checkpoint #${id}.`);
    const chain = info.tree ? [id] : this.store.chain(id);
    await wr.send({ t: 'have', checkpoints: chain.map((c) => identity(this.store, c)) });
    const have = await rd.expect<{ ids?: unknown }>('have');
    const ids = Array.isArray(have.ids) ? have.ids : [];
    let k = chain.length - 1;
    while (k >= 0 && typeof ids[k] !== 'number') k--;
    const out: SentCheckpoint = { id, remote: 0, already: k === chain.length - 1, checkpoints: [], imported: [], streams: 0, pages: 0, pagesSent: 0, pagesHeld: 0, pagesResumed: 0 };
    if (out.already) { out.remote = ids[k] as number; return out; }
    // A tree travels whole; a chain the receiver lacks entirely travels from its full; after that, continuations.
    const todo: { id: number }[] = k < 0 || info.tree ? [{ id }] : chain.slice(k + 1).map((c) => ({ id: c }));
    let remote = k >= 0 && !info.tree ? ids[k] as number : undefined;
    for (const step of todo) {
      // Straight from the segments into the wire: no stream file.
      const x = this.store.openExport(step.id, 'one', { checksum: this.checksum, ...(remote === undefined ? {} : { continues: remote }) });
      out.checkpoints.push(...x.checkpoints);
      const r = await offerStream(rd, wr, x, {}, this.footerLast);
      out.streams++;
      out.pages += r.pages;
      out.pagesSent += r.pagesSent;
      out.pagesHeld += r.pagesHeld;
      out.pagesResumed += r.pagesResumed;
      out.imported.push(...r.ids);
      remote = r.ids[r.ids.length - 1]!;
    }
    out.remote = remote!;
    return out;
  }

  /** Ends the session politely (the receiver then knows the transfer is complete). */
  async close(): Promise<void> {
    try {
      if (this.session) {
        await this.session.wr.send({ t: 'bye' });
        await this.session.rd.expect('bye').catch(() => undefined);
      }
    } catch { /* the receiver is gone: nothing to end */ } finally {
      await this.drop();
    }
  }
}

export interface SyncServed {
  /** Checkpoints imported in this session. */
  ids: number[];
  /** True when the sender said bye (else the connection broke: the sender may come back to resume). */
  complete: boolean;
  /** True when this end refused an offer and said why (a full disk, a damaged page, a failed import): resending as is fails again. */
  refused: boolean;
  pages: number;
  pagesReceived: number;
  pagesHeld: number;
  pagesResumed: number;
  failure?: string;
}

/** This store's checkpoints by the identity the sender names them with. */
function findHeld(store: Store, wanted: Identity[]): (number | null)[] {
  const targets = new Map(store.listTargets().map((t) => [t.id, t]));
  const byKey = new Map<string, number>();
  for (const c of store.list()) {
    const t = targets.get(c.targetId);
    if (t) byKey.set(`${t.pid}\0${t.startTime}\0${c.createdAt}`, c.id);
  }
  return wanted.map((w) => byKey.get(`${w.pid}\0${w.startTime}\0${w.createdAt}`) ?? null);
}

/** Serves one replication session whose magic rd has read (FrameReader.magic(SYNC_MAGIC)), until bye or a break. */
export async function serveSync(rd: FrameReader, wr: FrameWriter, deps: AcceptDeps & { onImported?: (r: AcceptResult) => void }): Promise<SyncServed> {
  const out: SyncServed = { ids: [], complete: false, refused: false, pages: 0, pagesReceived: 0, pagesHeld: 0, pagesResumed: 0 };
  try {
    const hello = await rd.expect<{ proto?: unknown }>('hello');
    if (hello.proto !== PROTO) {
      await wr.send({ t: 'error', message: `this Stasis speaks replication protocol ${PROTO}, the sender ${String(hello.proto)}: update both to the same version` });
      throw new StasisError('INVALID_INPUT', `The sender speaks replication protocol ${String(hello.proto)}, this Stasis protocol ${PROTO}.`);
    }
    // footerLast: each stream's checksum footer may come after its pages (the sender reads them once);
    // hashChecksum: streams of versions 3 and 4 are read (their checksum covers the page hashes).
    await wr.send({ t: 'hello', host: hostname(), footerLast: true, hashChecksum: true });
    for (;;) {
      const f = await rd.next();
      if (!f) { out.failure = 'the connection closed before the sender finished'; return out; }
      if (f.type !== 'json') throw new StasisError('INVALID_INPUT', 'data arrived outside an offer');
      const m = f.msg;
      if (m.t === 'bye') {
        await wr.send({ t: 'bye' }).catch(() => undefined);
        out.complete = true;
        return out;
      }
      if (m.t === 'have') {
        const list = Array.isArray(m.checkpoints) ? m.checkpoints.slice(0, 100_000) as Identity[] : [];
        await wr.send({ t: 'have', ids: findHeld(deps.store, list) });
        continue;
      }
      if (m.t !== 'offer') throw new StasisError('INVALID_INPUT', `unknown message "${m.t.slice(0, 40)}"`);
      try {
        const r = await acceptStream(rd, wr, m, deps);
        out.ids.push(...r.ids);
        out.pages += r.pages;
        out.pagesReceived += r.pagesReceived;
        out.pagesHeld += r.pagesHeld;
        out.pagesResumed += r.pagesResumed;
        deps.onImported?.(r);
        await wr.send({ t: 'imported', ids: r.ids });
      } catch (e) {
        // A break is not a refusal: the sender comes back to resume.
        if (rd.finished) throw e;
        const d = toErrorData(e);
        // The sender hears why; the session ends (what remains of the offer is not read).
        out.refused = await wr.send({ t: 'error', code: d.code, message: d.message }).then(() => true, () => false);
        throw e;
      }
    }
  } catch (e) {
    out.failure = (e as Error).message;
    return out;
  }
}
