/**
 * A Bloom filter of event keys: "certainly never seen" or "maybe seen". The decision log asks it
 * before reading SQLite for a new event id, so the common case (an id never seen) costs a string
 * hash and a few bit tests instead of an index lookup.
 *
 * It only adds keys, into generations, and grows with the volume instead of saturating (a fixed
 * 2^24-bit filter answered "maybe" for about a quarter of new ids at 5M a day):
 * - Time is cut into slices (a quarter of the horizon). A slice's first generation is sized for
 *   1.25 times the keys of the slice before, so at a steady rate each slice has one generation.
 * - A generation that fills up within its slice is followed by one of twice its capacity and 2 more
 *   bits per key, so the false positives of a slice's generations add up to under 0.7% (12 bits
 *   and 7 hashes per key of capacity: 0.35% for a full first generation, less after).
 * - A generation is dropped once its last key is `horizon` old, so a key is remembered for at
 *   least `horizon` and at most `horizon + slice`.
 */
export class EventFilter {
  readonly #generations: Generation[] = [];
  readonly #initialCapacity: number;
  readonly #maxCapacity: number;
  readonly #maxBytes: number;
  readonly #horizon: number;
  readonly #slice: number;
  readonly #now: () => number;
  #sliceStart = Number.NEGATIVE_INFINITY;
  #sliceKeys = 0;

  constructor(
    options: {
      /** Keys the first generation holds at least (default 1M: 1.5 MB). */
      initialCapacity?: number;
      /** The most keys one generation holds; past that, generations no longer grow (default 64M: 96 MB and more). */
      maxCapacity?: number;
      /**
       * The most bytes all generations may take (default 256 MB). At the limit no generation is
       * started until an old one expires, and the newest takes the keys over its capacity: the
       * filter answers "maybe" more often, but never forgets a key.
       */
      maxBytes?: number;
      /** How long a key is remembered at least. */
      horizon?: number;
      /** How long a generation takes keys at most. */
      slice?: number;
      now?: () => number;
    } = {},
  ) {
    this.#initialCapacity = options.initialCapacity ?? 1 << 20;
    this.#maxCapacity = Math.max(this.#initialCapacity, options.maxCapacity ?? 1 << 26);
    this.#maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.#horizon = options.horizon ?? 24 * 60 * 60 * 1000;
    this.#slice = options.slice ?? this.#horizon / 4;
    this.#now = options.now ?? Date.now;
  }

  add(key: string): void {
    const now = this.#now();
    let current = this.#generations.at(-1);
    if (now - this.#sliceStart >= this.#slice) {
      this.#sliceStart = now;
      const wanted = Math.ceil(this.#sliceKeys * 1.25);
      this.#sliceKeys = 0;
      current = this.#next(current, now, wanted, 0);
    } else if (current === undefined || current.count >= current.capacity) {
      current = this.#next(current, now, (current?.capacity ?? 0) * 2, (current?.depth ?? -1) + 1);
    }
    this.#sliceKeys += 1;
    hash(key);
    const words = current.words;
    const bits = current.bits;
    for (let index = 0; index < probes; index += 1) {
      const bit = ((first + index * second) >>> 0) % bits;
      words[bit >>> 5] = (words[bit >>> 5] as number) | (1 << (bit & 31));
    }
    current.count += 1;
    current.lastAt = now;
  }

  /** False only when the key was certainly not added in the last `horizon`. */
  mightContain(key: string): boolean {
    this.#expire(this.#now());
    hash(key);
    for (const generation of this.#generations) if (has(generation, first, second)) return true;
    return false;
  }

  /** How many generations are kept and their bytes, for tests and diagnostics. */
  get size(): { generations: number; bytes: number } {
    let bytes = 0;
    for (const generation of this.#generations) bytes += generation.words.byteLength;
    return { generations: this.#generations.length, bytes };
  }

  /**
   * The generation that takes the next key: a new one for `wanted` keys at `depth` (its place among
   * its slice's generations), or `previous` when the byte limit is reached.
   */
  #next(previous: Generation | undefined, now: number, wanted: number, depth: number): Generation {
    this.#expire(now);
    const capacity = Math.min(this.#maxCapacity, Math.max(this.#initialCapacity, wanted));
    const bitsPerKey = 12 + 2 * Math.min(depth, 4);
    let bits = Math.ceil((capacity * bitsPerKey) / 32) * 32;
    const room = this.#maxBytes - this.size.bytes;
    if (bits / 8 > room) {
      if (previous !== undefined && this.#generations.at(-1) === previous) return previous;
      bits = Math.max(32, Math.floor((room * 8) / 32) * 32);
    }
    const generation: Generation = {
      words: new Uint32Array(bits >>> 5),
      bits,
      capacity,
      depth,
      count: 0,
      lastAt: now,
    };
    this.#generations.push(generation);
    return generation;
  }

  #expire(now: number): void {
    while (
      this.#generations.length > 0 &&
      now - (this.#generations[0] as Generation).lastAt >= this.#horizon
    ) {
      this.#generations.shift();
    }
  }
}

interface Generation {
  readonly words: Uint32Array;
  readonly bits: number;
  readonly capacity: number;
  readonly depth: number;
  count: number;
  lastAt: number;
}

const probes = 7;

function has(generation: Generation, hashA: number, hashB: number): boolean {
  const words = generation.words;
  const bits = generation.bits;
  for (let index = 0; index < probes; index += 1) {
    const bit = ((hashA + index * hashB) >>> 0) % bits;
    if (((words[bit >>> 5] as number) & (1 << (bit & 31))) === 0) return false;
  }
  return true;
}

// The last key's two hashes, kept in module state so that hashing allocates nothing.
let first = 0;
let second = 0;

/** Two independent 32-bit FNV-1a hashes of a string (different offsets), for double hashing. */
function hash(key: string): void {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let index = 0; index < key.length; index += 1) {
    const code = key.charCodeAt(index);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b ^ code, 0x5bd1e995);
  }
  first = a >>> 0;
  second = (b | 1) >>> 0;
}
