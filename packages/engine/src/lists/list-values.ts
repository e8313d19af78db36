import { parseAddress } from '../rules/network-address.js';

/** What a list is for: rules read the kind from the list's name; Vigil does not act on it by itself. */
export const listKinds = ['block', 'allow', 'watch'] as const;
export type ListKind = (typeof listKinds)[number];

/** The type of a list's values, which decides how they are checked and normalised. */
export const listValueTypes = [
  'string',
  'ip',
  'email',
  'phone',
  'device',
  'account',
  'card',
  'domain',
  'country',
] as const;
export type ListValueType = (typeof listValueTypes)[number];

/** A value of a given type in its one stored form, or why it is not one. */
export type NormalisedValue = { ok: true; value: string } | { ok: false; message: string };

const emailPattern = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/;
const phonePattern = /^\+[1-9][0-9]{6,14}$/;
const phoneSeparators = /[\s().-]/g;
const domainPattern =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const countryPattern = /^[A-Z]{2}$/;
const maxValueLength = 512;

/** An IP address or range in a form ready for lookups: 16 bytes (IPv4 mapped) and a prefix on them. */
export interface IpRange {
  /** 4 × 32-bit words of the 16-byte address, host bits cleared. */
  readonly words: readonly [number, number, number, number];
  /** Prefix length counted on the 16-byte form (IPv4 /24 is 120). */
  readonly prefixBits: number;
  readonly version: 4 | 6;
}

function wordsOf(bytes: Uint8Array): [number, number, number, number] {
  const words: [number, number, number, number] = [0, 0, 0, 0];
  for (let word = 0; word < 4; word++) {
    const at = word * 4;
    words[word] =
      (((bytes[at] as number) << 24) |
        ((bytes[at + 1] as number) << 16) |
        ((bytes[at + 2] as number) << 8) |
        (bytes[at + 3] as number)) >>>
      0;
  }
  return words;
}

/** Clears the bits after `prefixBits` of a 128-bit address held as four words. */
export function maskWords(
  words: readonly [number, number, number, number],
  prefixBits: number,
): [number, number, number, number] {
  const masked: [number, number, number, number] = [0, 0, 0, 0];
  for (let word = 0; word < 4; word++) {
    const bits = Math.max(0, Math.min(32, prefixBits - word * 32));
    const mask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    masked[word] = ((words[word] as number) & mask) >>> 0;
  }
  return masked;
}

/**
 * A dotted IPv4 address in canonical form (no leading zeros) as a 32-bit number, or -1. The fast
 * path of bulk imports and lookups: no regular expression, no allocation.
 */
export function parseIpv4(text: string, end = text.length): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let at = 0; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (code >= 48 && code <= 57) {
      if (digits === 1 && octet === 0) return -1;
      octet = octet * 10 + (code - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

/** Parses an address (`192.0.2.1`, `2001:db8::1`) into lookup form; undefined when it is not one. */
export function parseIp(text: string): IpRange | undefined {
  const v4 = parseIpv4(text);
  if (v4 >= 0) return { words: [0, 0, 0xffff, v4], prefixBits: 128, version: 4 };
  const address = parseAddress(text);
  if (address === undefined) return undefined;
  const words = wordsOf(address.bytes);
  // `::ffff:a.b.c.d` is the IPv4 address a.b.c.d.
  const mapped = words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
  return { words, prefixBits: 128, version: mapped ? 4 : 6 };
}

/**
 * Parses an address or a CIDR range. Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`). A `/0`
 * is refused: it would match every address, which in a block or allow list is always a mistake.
 */
export function parseIpOrRange(text: string): IpRange | string {
  const slash = text.indexOf('/');
  const address = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) return 'is not an IP address or CIDR range';
  if (slash < 0) return address;
  const prefix = text.slice(slash + 1);
  const maxBits = address.version === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > maxBits) return 'has an invalid prefix length';
  const bits = Number(prefix);
  if (bits === 0) return 'is a /0 range, which would match every address';
  const prefixBits = address.version === 4 ? bits + 96 : bits;
  return { words: maskWords(address.words, prefixBits), prefixBits, version: address.version };
}

function hex(word: number): [string, string] {
  return [(word >>> 16).toString(16), (word & 0xffff).toString(16)];
}

/** Canonical text of an address or range: dotted IPv4, RFC 5952 IPv6, no `/32` or `/128`. */
export function formatIpRange(range: IpRange): string {
  const [w0, w1, w2, w3] = range.words;
  let address: string;
  if (range.version === 4) {
    address = `${w3 >>> 24}.${(w3 >>> 16) & 0xff}.${(w3 >>> 8) & 0xff}.${w3 & 0xff}`;
  } else {
    const groups = [...hex(w0), ...hex(w1), ...hex(w2), ...hex(w3)];
    // The longest run of two or more zero groups becomes `::` (the first one on a tie).
    let bestStart = -1;
    let bestLength = 1;
    for (let start = 0; start < 8; ) {
      if (groups[start] !== '0') {
        start++;
        continue;
      }
      let end = start;
      while (end < 8 && groups[end] === '0') end++;
      if (end - start > bestLength) {
        bestStart = start;
        bestLength = end - start;
      }
      start = end;
    }
    address =
      bestStart < 0
        ? groups.join(':')
        : `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
  }
  const maxBits = 128;
  if (range.prefixBits === maxBits) return address;
  return `${address}/${range.version === 4 ? range.prefixBits - 96 : range.prefixBits}`;
}

/**
 * Checks a value for a list of the given type and returns its stored form: emails and domains
 * lower-case, phones without separators, IPs and ranges canonical, countries upper-case; other
 * types are trimmed and otherwise kept as given (device ids, account ids and card tokens are
 * case-sensitive).
 */
export function normaliseListValue(type: ListValueType, raw: unknown): NormalisedValue {
  let text: string;
  if (typeof raw === 'string') text = raw.trim();
  else if ((typeof raw === 'number' && Number.isFinite(raw)) || typeof raw === 'bigint') text = String(raw);
  else return { ok: false, message: 'must be a string' };
  if (text === '') return { ok: false, message: 'must not be empty' };
  if (text.length > maxValueLength)
    return { ok: false, message: `is longer than ${maxValueLength} characters` };
  switch (type) {
    case 'ip': {
      // A canonical IPv4 address is its own stored form.
      if (parseIpv4(text) >= 0) return { ok: true, value: text };
      const range = parseIpOrRange(text);
      return typeof range === 'string'
        ? { ok: false, message: range }
        : { ok: true, value: formatIpRange(range) };
    }
    case 'email': {
      const email = text.toLowerCase();
      return email.length <= 254 && emailPattern.test(email)
        ? { ok: true, value: email }
        : { ok: false, message: 'is not an email address' };
    }
    case 'phone': {
      const phone = text.replace(phoneSeparators, '');
      return phonePattern.test(phone)
        ? { ok: true, value: phone }
        : { ok: false, message: 'is not a phone number in E.164 form (+14155550123)' };
    }
    case 'domain': {
      const domain = text.toLowerCase().replace(/\.$/, '');
      return domainPattern.test(domain)
        ? { ok: true, value: domain }
        : { ok: false, message: 'is not a domain name' };
    }
    case 'country': {
      const country = text.toUpperCase();
      return countryPattern.test(country)
        ? { ok: true, value: country }
        : { ok: false, message: 'is not an ISO 3166-1 alpha-2 country code' };
    }
    default:
      return { ok: true, value: text };
  }
}
