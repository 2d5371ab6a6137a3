/**
 * The pages a segment writer stored so far, by the first 4 bytes of their hash: an open-addressing
 * table in two Int32Arrays. A Map keyed by 6 hash bytes cost ~1-2 µs per lookup in a 1 GiB full
 * checkpoint (a heap number per key, 180k keys: the profile's `mine`, 0.36 s per GiB under load).
 * Two pages whose hashes share 4 bytes keep only the later one here (its duplicates are then
 * stored again, never mistaken: callers compare the full hash). Expected ~4 such pairs per 180k
 * pages.
 */
export class PageSlots {
  private keys = new Int32Array(1 << 16);
  /** Page index + 1; 0 = empty slot. */
  private vals = new Int32Array(1 << 16);
  private count = 0;

  /**
   * A table a finished writer gave back (give), for the next one of this process: a 1 GiB full
   * checkpoint grew a fresh table 3 times, rehashing ~230k keys (~0.01-0.03 s). Kept only up to
   * SPARE_SLOTS (8 MiB), so an engine that lives on holds little.
   */
  private static spare: PageSlots | null = null;
  private static readonly SPARE_SLOTS = 1 << 20;

  /** An empty table: the spare one, cleared, when there is one. */
  static take(): PageSlots {
    const s = PageSlots.spare;
    if (!s) return new PageSlots();
    PageSlots.spare = null;
    s.vals.fill(0);
    s.count = 0;
    return s;
  }

  /** Gives this table back for a later take(); the caller uses it no more. */
  give(): void {
    if (this.keys.length <= PageSlots.SPARE_SLOTS && this.keys.length > (PageSlots.spare?.keys.length ?? 0)) PageSlots.spare = this;
  }

  /**
   * Makes room for n more entries (the table at most half full after them): the addon's
   * decidePages (page_decide.c) probes and inserts in keys/vals in place, as claim and set do, and
   * cannot grow them.
   */
  reserve(n: number): void {
    while ((this.count + n) * 2 > this.keys.length) this.grow();
  }

  /** The arrays decidePages works in (valid until the next reserve, claim or set) and their entry count, which it updates. */
  get arrays(): { keys: Int32Array; vals: Int32Array } {
    return { keys: this.keys, vals: this.vals };
  }

  get entries(): number {
    return this.count;
  }

  set entries(n: number) {
    this.count = n;
  }

  /** The page stored under key (4 hash bytes as a signed 32-bit integer), or -1. */
  get(key: number): number {
    const mask = this.keys.length - 1;
    for (let i = PageSlots.slot(key, mask); ; i = (i + 1) & mask) {
      const v = this.vals[i]!;
      if (v === 0) return -1;
      if (this.keys[i] === key) return v - 1;
    }
  }

  /**
   * get(key), and when the key is not there, set(key, page) in the same probe (a page about to be
   * written: one probe of the table per new page instead of two).
   */
  claim(key: number, page: number): number {
    if ((this.count + 1) * 2 > this.keys.length) this.grow();
    const mask = this.keys.length - 1;
    for (let i = PageSlots.slot(key, mask); ; i = (i + 1) & mask) {
      const v = this.vals[i]!;
      if (v === 0) { this.keys[i] = key; this.vals[i] = page + 1; this.count++; return -1; }
      if (this.keys[i] === key) return v - 1;
    }
  }

  set(key: number, page: number): void {
    if ((this.count + 1) * 2 > this.keys.length) this.grow();
    const mask = this.keys.length - 1;
    for (let i = PageSlots.slot(key, mask); ; i = (i + 1) & mask) {
      if (this.vals[i] === 0) { this.keys[i] = key; this.vals[i] = page + 1; this.count++; return; }
      if (this.keys[i] === key) { this.vals[i] = page + 1; return; }
    }
  }

  /** Hash bytes are uniform already; mixing in the high half spreads keys that differ only there. */
  private static slot(key: number, mask: number): number {
    return (Math.imul(key, 0x9e3779b1) ^ (key >>> 16)) & mask;
  }

  private grow(): void {
    const { keys, vals } = this;
    this.keys = new Int32Array(keys.length * 2);
    this.vals = new Int32Array(keys.length * 2);
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (vals[i] !== 0) this.set(keys[i]!, vals[i]! - 1);
  }
}
