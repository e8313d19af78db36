import {
  formatIpRange,
  type IpRange,
  type ListValueType,
  maskWords,
  normaliseListValue,
  parseIp,
  parseIpOrRange,
  parseIpv4,
} from './list-values.js';

/** Expiry of an entry without a TTL. */
const never = Number.POSITIVE_INFINITY;

function v6Key(words: readonly number[]): string {
  return `${words[0]},${words[1]},${words[2]},${words[3]}`;
}

/**
 * The in-memory index of one list: value → expiry, for lookups on the hot path.
 *
 * Exact values are one `Map` read (O(1)). An IP list also keeps, for each prefix length in use, a
 * map from the masked network to the entry: an address is looked up once per distinct prefix
 * length present (at most 32 for IPv4 and 128 for IPv6, in practice a handful), whatever the
 * number of entries, and overlapping or nested ranges each keep their own TTL.
 *
 * Expired entries never match (expiry is checked on every lookup) and are removed a few at a time
 * by {@link sweep}.
 */
export class ListIndex {
  readonly #exact = new Map<string, number>();
  /** IPv4 ranges by prefix length (on the 16-byte form): masked last word → stored value. */
  readonly #v4 = new Map<number, Map<number, string>>();
  /** IPv6 ranges by prefix length: masked words → stored value. */
  readonly #v6 = new Map<number, Map<string, string>>();
  /** Prefix lengths in use, longest first. */
  #v4Prefixes: number[] = [];
  #v6Prefixes: number[] = [];
  #sweeper: Iterator<[string, number]> | undefined;

  constructor(readonly type: ListValueType) {}

  /** Entries held, expired ones not yet swept included. */
  get size(): number {
    return this.#exact.size;
  }

  /** Whether a live entry has this stored value. */
  hasLive(value: string, now: number): boolean {
    const expiresAt = this.#exact.get(value);
    return expiresAt !== undefined && expiresAt > now;
  }

  /** Expiry of a held entry in epoch ms; null when it has none or is not held. */
  expiryOf(value: string): number | null {
    const expiresAt = this.#exact.get(value);
    return expiresAt === undefined || expiresAt === never ? null : expiresAt;
  }

  /**
   * Adds or replaces an entry by its stored (normalised) value; `expiresAt` in epoch ms or null.
   * Returns true when the value was not live before (a new entry).
   */
  set(value: string, expiresAt: number | null, now: number): boolean {
    const previous = this.#exact.get(value);
    this.#exact.set(value, expiresAt ?? never);
    if (previous === undefined && this.type === 'ip') this.#addRange(value);
    return previous === undefined || previous <= now;
  }

  /** Removes an entry by its stored value; true when it was there (live or not). */
  delete(value: string): boolean {
    if (!this.#exact.delete(value)) return false;
    if (this.type === 'ip') this.#removeRange(value);
    return true;
  }

  /** Whether a value given by a rule matches a live entry; an IP matches the ranges containing it. */
  matches(raw: unknown, now: number): boolean {
    if (this.type === 'ip' && typeof raw === 'string' && !raw.includes('/')) {
      const text = raw.trim();
      const address = parseIp(text);
      if (address === undefined) return false;
      // Single IPv4 addresses are only in the exact map, under their canonical text.
      if (address.version === 4 && this.hasLive(parseIpv4(text) >= 0 ? text : formatIpRange(address), now)) {
        return true;
      }
      return this.#matchesAddress(address, now);
    }
    const normalised = normaliseListValue(this.type, raw);
    return normalised.ok && this.hasLive(normalised.value, now);
  }

  /** Removes up to `budget` expired entries, resuming where the last sweep stopped; returns them. */
  sweep(now: number, budget: number): string[] {
    const removed: string[] = [];
    let iterator = this.#sweeper ?? this.#exact.entries();
    for (let visited = 0; visited < budget; visited++) {
      const next = iterator.next();
      if (next.done === true) {
        iterator = this.#exact.entries();
        this.#sweeper = undefined;
        return this.#removeAll(removed);
      }
      const [value, expiresAt] = next.value;
      if (expiresAt <= now) removed.push(value);
    }
    this.#sweeper = iterator;
    return this.#removeAll(removed);
  }

  #removeAll(values: string[]): string[] {
    for (const value of values) this.delete(value);
    return values;
  }

  #matchesAddress(address: IpRange, now: number): boolean {
    if (address.version === 4) {
      const word = address.words[3];
      for (const prefix of this.#v4Prefixes) {
        const hostBits = 128 - prefix;
        const masked = hostBits === 0 ? word : hostBits === 32 ? 0 : ((word >>> hostBits) << hostBits) >>> 0;
        const value = this.#v4.get(prefix)?.get(masked);
        if (value !== undefined && this.hasLive(value, now)) return true;
      }
      return false;
    }
    for (const prefix of this.#v6Prefixes) {
      const value = this.#v6.get(prefix)?.get(v6Key(maskWords(address.words, prefix)));
      if (value !== undefined && this.hasLive(value, now)) return true;
    }
    return false;
  }

  #addRange(value: string): void {
    // A single IPv4 address needs no range entry: lookups find it in the exact map.
    if (parseIpv4(value) >= 0) return;
    const range = parseIpOrRange(value);
    if (typeof range === 'string') return;
    if (range.version === 4) {
      this.#v4Network(range.prefixBits).set(range.words[3], value);
      return;
    }
    let byNetwork = this.#v6.get(range.prefixBits);
    if (byNetwork === undefined) {
      byNetwork = new Map();
      this.#v6.set(range.prefixBits, byNetwork);
      this.#v6Prefixes = [...this.#v6.keys()].sort((a, b) => b - a);
    }
    byNetwork.set(v6Key(range.words), value);
  }

  #v4Network(prefixBits: number): Map<number, string> {
    let byNetwork = this.#v4.get(prefixBits);
    if (byNetwork === undefined) {
      byNetwork = new Map();
      this.#v4.set(prefixBits, byNetwork);
      this.#v4Prefixes = [...this.#v4.keys()].sort((a, b) => b - a);
    }
    return byNetwork;
  }

  #removeRange(value: string): void {
    if (parseIpv4(value) >= 0) return;
    const range = parseIpOrRange(value);
    if (typeof range === 'string') return;
    if (range.version === 4) {
      const byNetwork = this.#v4.get(range.prefixBits);
      byNetwork?.delete(range.words[3]);
      if (byNetwork?.size === 0) {
        this.#v4.delete(range.prefixBits);
        this.#v4Prefixes = this.#v4Prefixes.filter((prefix) => prefix !== range.prefixBits);
      }
      return;
    }
    const byNetwork = this.#v6.get(range.prefixBits);
    byNetwork?.delete(v6Key(range.words));
    if (byNetwork?.size === 0) {
      this.#v6.delete(range.prefixBits);
      this.#v6Prefixes = this.#v6Prefixes.filter((prefix) => prefix !== range.prefixBits);
    }
  }
}
