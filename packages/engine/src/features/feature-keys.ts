import type { FieldType } from '@vigil/protocol';
import type { IpInfo } from '../rules/vigil-functions.js';

/**
 * One item of a feature's `by`: a field's value as it is, or a value derived from a field.
 * The grammar is deliberately tiny and parsed by a regular expression, never evaluated:
 *
 * ```
 * by-item   = field | "email_domain(" field ")" | "asn(" field ")"
 *           | "ip_prefix(" field "," ipv4-bits [ "," ipv6-bits ] ")"
 * field     = [A-Za-z_][A-Za-z0-9_]{0,63}     (spaces allowed around arguments)
 * ```
 */
export type ByTerm =
  | { readonly kind: 'field'; readonly field: string }
  | { readonly kind: 'email_domain'; readonly field: string }
  | { readonly kind: 'asn'; readonly field: string }
  | {
      readonly kind: 'ip_prefix';
      readonly field: string;
      readonly ipv4Bits: number;
      readonly ipv6Bits: number;
    };

/** The IPv6 prefix of `ip_prefix(ip, n)` without a third argument: one subscriber's /64. */
export const defaultIpv6PrefixBits = 64;

/** What derived keys may look up; a fixed object held by the feature service. */
export interface KeyServices {
  /** The IP database (`asn(...)`); absent until it has loaded, so such keys have no value. */
  ipInfo: ((ip: string) => IpInfo | undefined) | undefined;
}

/**
 * Builds the group key of a feature from an event's fields; undefined when a `by` item has no
 * value (absent field, no `@`, not an IP address, unknown ASN), so the feature has no value.
 */
export type KeyExtractor = (
  fields: Readonly<Record<string, unknown>>,
  services: KeyServices,
) => string | undefined;

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** A name, optionally called with a comma-separated argument list (checked one by one below). */
const byItemShape = /^([A-Za-z_][A-Za-z0-9_]{0,63})(?:\(([^()]*)\))?$/;
const bits = /^[0-9]{1,3}$/;
const usage = {
  email_domain: 'email_domain(<email or string field>)',
  asn: 'asn(<ip field>)',
  ip_prefix: 'ip_prefix(<ip field>, <IPv4 bits 8..32>[, <IPv6 bits 16..128>])',
} as const;
type FunctionName = keyof typeof usage;
const functionNames = Object.keys(usage) as FunctionName[];

/** Parses one `by` item, or says precisely what is wrong with it. */
export function parseByTerm(text: string): { term: ByTerm } | { error: string } {
  const match = byItemShape.exec(text);
  if (match === null)
    return {
      error: `must be a field name or one of ${functionNames.map((name) => usage[name]).join(', ')}`,
    };
  const name = match[1] as string;
  if (match[2] === undefined) return { term: { kind: 'field', field: name } };
  if (!(functionNames as string[]).includes(name))
    return { error: `unknown function '${name}'; use email_domain, ip_prefix or asn` };
  const fn = name as FunctionName;
  const args = match[2].split(',').map((arg) => arg.trim());
  const field = args[0] as string;
  if (!identifier.test(field)) return { error: `${fn} needs a field name first: ${usage[fn]}` };
  if (fn !== 'ip_prefix') {
    if (args.length !== 1) return { error: `${fn} takes one field: ${usage[fn]}` };
    return { term: { kind: fn, field } };
  }
  if (args.length < 2) return { error: `ip_prefix needs a prefix length: ${usage.ip_prefix}` };
  if (args.length > 3) return { error: `ip_prefix takes at most two prefix lengths: ${usage.ip_prefix}` };
  const [ipv4Text, ipv6Text] = args.slice(1) as [string, string | undefined];
  if (!bits.test(ipv4Text)) return { error: 'prefix length must be a whole number' };
  const ipv4Bits = Number(ipv4Text);
  if (ipv4Bits < 8 || ipv4Bits > 32) return { error: 'prefix length must be 8..32 for IPv4' };
  let ipv6Bits = defaultIpv6PrefixBits;
  if (ipv6Text !== undefined) {
    if (!bits.test(ipv6Text)) return { error: 'prefix length must be a whole number' };
    ipv6Bits = Number(ipv6Text);
    if (ipv6Bits < 16 || ipv6Bits > 128) return { error: 'prefix length must be 16..128 for IPv6' };
  }
  return { term: { kind: 'ip_prefix', field, ipv4Bits, ipv6Bits } };
}

/** One spelling per meaning, so `ip_prefix(ip,24)` and `ip_prefix(ip, 24, 64)` are the same item. */
export function canonicalByTerm(term: ByTerm): string {
  switch (term.kind) {
    case 'field':
      return term.field;
    case 'ip_prefix':
      return `ip_prefix(${term.field}, ${term.ipv4Bits}, ${term.ipv6Bits})`;
    default:
      return `${term.kind}(${term.field})`;
  }
}

const ipTypes: ReadonlySet<FieldType> = new Set(['ip']);
const emailTypes: ReadonlySet<FieldType> = new Set(['email', 'string']);

/** Why a term does not fit a field of this type, or undefined when it does. */
export function checkByTermType(term: ByTerm, fieldType: FieldType): string | undefined {
  switch (term.kind) {
    case 'field':
      return fieldType === 'string_list' ? `'${term.field}' is a list; group by a single value` : undefined;
    case 'email_domain':
      return emailTypes.has(fieldType)
        ? undefined
        : `email_domain needs an email or string field; '${term.field}' is ${fieldType}`;
    default:
      return ipTypes.has(fieldType)
        ? undefined
        : `${term.kind} needs an ip field; '${term.field}' is ${fieldType}`;
  }
}

/** Whether a term needs the IP database. */
export function needsIpData(term: ByTerm): boolean {
  return term.kind === 'asn';
}

/**
 * Compiles the key of a `by` list once per feature program. Plain fields keep the cheapest path
 * (one property read and `String()`); items are joined with NUL, which no field value holds
 * in practice and no derived value can hold.
 */
export function keyExtractor(terms: readonly ByTerm[]): KeyExtractor {
  if (terms.every((term) => term.kind === 'field')) {
    const names = terms.map((term) => term.field);
    if (names.length === 1) {
      const name = names[0] as string;
      return (fields) => {
        const value = fields[name];
        return value === undefined || value === null ? undefined : String(value);
      };
    }
    return (fields) => {
      let key = '';
      for (let index = 0; index < names.length; index++) {
        const value = fields[names[index] as string];
        if (value === undefined || value === null) return undefined;
        key += index === 0 ? String(value) : `\u0000${String(value)}`;
      }
      return key;
    };
  }
  const parts = terms.map(keyPart);
  if (parts.length === 1) return parts[0] as KeyExtractor;
  return (fields, services) => {
    let key = '';
    for (let index = 0; index < parts.length; index++) {
      const value = (parts[index] as KeyExtractor)(fields, services);
      if (value === undefined) return undefined;
      key += index === 0 ? value : `\u0000${value}`;
    }
    return key;
  };
}

function keyPart(term: ByTerm): KeyExtractor {
  const name = term.field;
  switch (term.kind) {
    case 'field':
      return (fields) => {
        const value = fields[name];
        return value === undefined || value === null ? undefined : String(value);
      };
    case 'email_domain':
      return (fields) => {
        const value = fields[name];
        return typeof value === 'string' ? emailDomain(value) : undefined;
      };
    case 'asn':
      return (fields, services) => {
        const value = fields[name];
        if (typeof value !== 'string' || services.ipInfo === undefined) return undefined;
        const asn = services.ipInfo(value)?.asn;
        return asn === undefined ? undefined : `AS${asn}`;
      };
    case 'ip_prefix': {
      const { ipv4Bits, ipv6Bits } = term;
      return (fields) => {
        const value = fields[name];
        return typeof value === 'string' ? ipPrefix(value, ipv4Bits, ipv6Bits) : undefined;
      };
    }
  }
}

/** The lower-cased domain after the last `@` (as the rule function `email_domain`), if any. */
export function emailDomain(email: string): string | undefined {
  const at = email.lastIndexOf('@');
  if (at < 1 || at === email.length - 1) return undefined;
  return email.slice(at + 1).toLowerCase();
}

/**
 * The network of an address's prefix, as `203.0.113.0/24` or `2001:db8:1::/48`; undefined when
 * the text is not an IP address. An IPv4-mapped IPv6 address (`::ffff:203.0.113.5`) is IPv4.
 */
export function ipPrefix(text: string, ipv4Bits: number, ipv6Bits: number): string | undefined {
  const ipv4 = parseIpv4(text, 0, text.length);
  if (ipv4 !== undefined) return ipv4Prefix(ipv4, ipv4Bits);
  // A zone (`fe80::1%eth0`) names the sender's interface, not part of the address.
  const zone = text.indexOf('%');
  if (!parseIpv6(text, zone < 0 ? text.length : zone)) return undefined;
  const groups = ipv6Groups;
  if (
    groups[0] === 0 &&
    groups[1] === 0 &&
    groups[2] === 0 &&
    groups[3] === 0 &&
    groups[4] === 0 &&
    groups[5] === 0xffff
  )
    return ipv4Prefix((groups[6] as number) * 65_536 + (groups[7] as number), ipv4Bits);
  for (let group = 0; group < 8; group++) {
    const keep = Math.max(0, Math.min(16, ipv6Bits - group * 16));
    groups[group] = (groups[group] as number) & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${formatIpv6(groups)}/${ipv6Bits}`;
}

/**
 * A dotted-quad IPv4 address in `text[from, to)` as an unsigned 32-bit number; no leading zeros
 * (as the event validator), no short or hex forms.
 */
function parseIpv4(text: string, from: number, to: number): number | undefined {
  if (to - from < 7 || to - from > 15) return undefined;
  let address = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let index = from; index < to; index++) {
    const code = text.charCodeAt(index);
    if (code === 46) {
      if (digits === 0 || dots === 3) return undefined;
      address = address * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && octet === 0) return undefined;
      octet = octet * 10 + (code - 48);
      digits++;
      if (octet > 255) return undefined;
    } else return undefined;
  }
  if (digits === 0 || dots !== 3) return undefined;
  return address * 256 + octet;
}

/** The groups of the last parsed IPv6 address; reused, as keys are built synchronously. */
const ipv6Groups = new Uint16Array(8);

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** Parses an IPv6 address in `text[0, end)` into `ipv6Groups`, `::` and a dotted IPv4 tail included. */
function parseIpv6(text: string, end: number): boolean {
  if (end < 2 || end > 45) return false;
  const groups = ipv6Groups;
  let count = 0;
  let gap = -1;
  let index = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return false;
    gap = 0;
    index = 2;
  }
  while (index < end) {
    if (count === 8) return false;
    let value = 0;
    let next = index;
    for (; next < end; next++) {
      const digit = hexValue(text.charCodeAt(next));
      if (digit < 0) break;
      if (next - index === 4) return false;
      value = value * 16 + digit;
    }
    if (next < end && text.charCodeAt(next) === 46) {
      const ipv4 = count <= 6 ? parseIpv4(text, index, end) : undefined;
      if (ipv4 === undefined) return false;
      groups[count++] = ipv4 >>> 16;
      groups[count++] = ipv4 & 0xffff;
      index = end;
      break;
    }
    if (next === index) return false;
    groups[count++] = value;
    if (next === end) break;
    if (text.charCodeAt(next) !== 58) return false;
    if (text.charCodeAt(next + 1) === 58 && next + 1 < end) {
      if (gap >= 0) return false;
      gap = count;
      index = next + 2;
    } else {
      index = next + 1;
      if (index === end) return false;
    }
  }
  if (gap < 0) return count === 8;
  if (count > 7) return false;
  const tail = count - gap;
  for (let offset = tail - 1; offset >= 0; offset--)
    groups[8 - tail + offset] = groups[gap + offset] as number;
  for (let group = gap; group < 8 - tail; group++) groups[group] = 0;
  return true;
}

function ipv4Prefix(address: number, prefixBits: number): string {
  const network = (address & (-1 << (32 - prefixBits))) >>> 0;
  return `${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${prefixBits}`;
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest run of two or more zero groups as `::`. */
function formatIpv6(groups: Uint16Array): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; ) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  let text = '';
  for (let group = 0; group < 8; group++) {
    if (group === bestStart) {
      text += '::';
      group += bestLength - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += (groups[group] as number).toString(16);
  }
  return text;
}
