const precision = 10;
const registers = 1 << precision;
/** Pairs kept per register; ranks decrease along a register's list, so few are ever needed. */
const depth = 12;

/**
 * A HyperLogLog over a sliding window (after Chabchoub and Hébrail, "Sliding HyperLogLog", 2010):
 * each register keeps the (bucket, rank) pairs that can still be its maximum in some future
 * window: newer pairs to the right, ranks strictly decreasing. Reading at bucket `now` uses, per
 * register, the first pair not older than the window.
 *
 * With 2^10 registers the relative standard error is 1.04 / √1024 ≈ 3.3% (about 10% at three
 * standard errors); memory is about 62 KB per key.
 */
export class SlidingHyperLogLog {
  static readonly precision = precision;
  static readonly registers = registers;
  static readonly depth = depth;

  readonly #ranks = new Uint8Array(registers * depth);
  /** Buckets relative to `#base`, so they fit 32 bits. */
  readonly #buckets = new Uint32Array(registers * depth);
  readonly #lengths = new Uint8Array(registers);
  readonly #base: number;

  constructor(base: number) {
    this.#base = base;
  }

  add(value: string, bucket: number): void {
    this.#addsSinceEstimate++;
    const hash = hash32(value);
    const register = hash >>> (32 - precision);
    const rest = (hash << precision) | (1 << (precision - 1));
    const rank = Math.clz32(rest) + 1;
    const start = register * depth;
    let length = this.#lengths[register] as number;
    // Events arrive in receive order; should the clock step back, a value counts as of the newest
    // pair of its register, so the list stays ordered.
    const relative =
      length > 0
        ? Math.max(bucket - this.#base, this.#buckets[start + length - 1] as number)
        : Math.max(0, bucket - this.#base);
    // A newer pair with a rank at least as high makes older, lower pairs useless.
    while (length > 0 && (this.#ranks[start + length - 1] as number) <= rank) length--;
    if (length === depth) {
      // Full: drop the oldest pair (it expires first anyway).
      this.#ranks.copyWithin(start, start + 1, start + depth);
      this.#buckets.copyWithin(start, start + 1, start + depth);
      length--;
    }
    this.#ranks[start + length] = rank;
    this.#buckets[start + length] = relative;
    this.#lengths[register] = length + 1;
  }

  /**
   * Estimated number of distinct values added in buckets `oldest` and later. A full estimate reads
   * every register, so it is reused within a bucket plus one per value added since (each adds at
   * most one distinct value), and redone after 1% growth: the answer stays within 1% above it.
   */
  estimate(oldest: number): number {
    if (oldest === this.#cachedAt && this.#addsSinceEstimate <= Math.max(8, this.#cachedEstimate / 100))
      return this.#cachedEstimate + this.#addsSinceEstimate;
    this.#cachedEstimate = this.#fullEstimate(oldest);
    this.#cachedAt = oldest;
    this.#addsSinceEstimate = 0;
    return this.#cachedEstimate;
  }

  #cachedAt = Number.NaN;
  #cachedEstimate = 0;
  #addsSinceEstimate = 0;

  #fullEstimate(oldest: number): number {
    const floor = oldest - this.#base;
    let sum = 0;
    let zeros = 0;
    for (let register = 0; register < registers; register++) {
      const start = register * depth;
      const length = this.#lengths[register] as number;
      let rank = 0;
      for (let index = 0; index < length; index++) {
        if ((this.#buckets[start + index] as number) >= floor) {
          rank = this.#ranks[start + index] as number;
          break;
        }
      }
      sum += 2 ** -rank;
      if (rank === 0) zeros++;
    }
    const alpha = 0.7213 / (1 + 1.079 / registers);
    const raw = (alpha * registers * registers) / sum;
    if (raw <= 2.5 * registers && zeros > 0) return Math.round(registers * Math.log(registers / zeros));
    return Math.round(raw);
  }
}

/** FNV-1a over UTF-16 code units, then murmur3's finaliser for avalanche. */
export function hash32(value: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < value.length; index++) {
    hash ^= value.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
