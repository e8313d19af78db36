/**
 * Remembers recent results by key for a limited time and number, so retries of the same event id
 * get the first answer without a store read. Older entries fall back to the decision log.
 * Insertion order is expiry order, so eviction only ever looks at the front of the map.
 */
export class IdempotencyIndex<T> {
  readonly #entries = new Map<string, { value: T; expiresAt: number }>();

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
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size <= this.maxEntries && entry.expiresAt > now) return;
      this.#entries.delete(key);
    }
  }
}
