/**
 * A Bloom filter of event keys: "certainly never seen" or "maybe seen". The decision log asks it
 * before reading SQLite for a new event id, so the common case (an id never seen) costs two string
 * hashes instead of an index lookup. It only adds keys; two generations of `period` each bound how
 * long a key stays, so a key is remembered for at least one period and at most two.
 */
export class EventFilter {
  #current: Uint32Array;
  #previous: Uint32Array;
  #rotatedAt: number;

  constructor(
    private readonly bits = 1 << 24,
    private readonly period = 24 * 60 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {
    this.#current = new Uint32Array(bits >>> 5);
    this.#previous = new Uint32Array(bits >>> 5);
    this.#rotatedAt = now();
  }

  add(key: string): void {
    this.#rotate();
    const [first, second] = hashes(key);
    const words = this.#current;
    for (let index = 0; index < 4; index += 1) {
      const bit = ((first + index * second) >>> 0) % this.bits;
      words[bit >>> 5] = (words[bit >>> 5] as number) | (1 << (bit & 31));
    }
  }

  /** False only when the key was certainly not added in the last period. */
  mightContain(key: string): boolean {
    this.#rotate();
    const [first, second] = hashes(key);
    return this.#has(this.#current, first, second) || this.#has(this.#previous, first, second);
  }

  #has(words: Uint32Array, first: number, second: number): boolean {
    for (let index = 0; index < 4; index += 1) {
      const bit = ((first + index * second) >>> 0) % this.bits;
      if (((words[bit >>> 5] as number) & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }

  #rotate(): void {
    if (this.now() - this.#rotatedAt < this.period) return;
    this.#previous = this.#current;
    this.#current = new Uint32Array(this.bits >>> 5);
    this.#rotatedAt = this.now();
  }
}

/** Two independent 32-bit FNV-1a hashes of a string (different offsets), for double hashing. */
function hashes(key: string): [number, number] {
  let first = 0x811c9dc5;
  let second = 0x01000193 ^ 0x5bd1e995;
  for (let index = 0; index < key.length; index += 1) {
    const code = key.charCodeAt(index);
    first = Math.imul(first ^ code, 0x01000193);
    second = Math.imul(second ^ code, 0x5bd1e995);
  }
  return [first >>> 0, (second | 1) >>> 0];
}
