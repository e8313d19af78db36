/**
 * Remembers recent results by key for a limited time and number, so retries of the same event id
 * get the first answer without a store read. Older entries fall back to the decision log.
 * Insertion order is expiry order, so eviction only ever looks at the front of the map.
 */
export class IdempotencyIndex<T> {
  readonly #entries = new Map<string, { value: T; expiresAt: number }>();
  /**
   * One iterator over the entries, kept between evictions, and the entry it stands on (read but
   * not yet evicted). A fresh iterator per eviction starts at the front of the map's table, which
   * holds a hole for every entry deleted since the table was last rebuilt: once full, every insert
   * deletes one, so each eviction stepped over up to ~100,000 holes (measured: 14–122 µs per
   * insert at 200,000 entries, against 1.5 µs before the index was full). A kept iterator steps
   * over each hole once.
   */
  #cursor: Iterator<[string, { value: T; expiresAt: number }]> | undefined;
  #head: [string, { value: T; expiresAt: number }] | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): T | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: T): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt: this.now() + this.ttlMs });
    this.#evict();
  }

  /** Replaces a present entry's value, keeping its place and expiry; nothing when absent. */
  update(key: string, value: T): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined) entry.value = value;
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  #evict(): void {
    const now = this.now();
    for (;;) {
      if (this.#head === undefined) {
        this.#cursor ??= this.#entries.entries();
        const next = this.#cursor.next();
        if (next.done === true) {
          this.#cursor = undefined;
          return;
        }
        this.#head = next.value;
      }
      const [key, entry] = this.#head;
      // Deleted, or set again (and so moved to the back), since the iterator reached it.
      if (this.#entries.get(key) !== entry) {
        this.#head = undefined;
        continue;
      }
      if (this.#entries.size <= this.maxEntries && entry.expiresAt > now) return;
      this.#entries.delete(key);
      this.#head = undefined;
    }
  }
}
