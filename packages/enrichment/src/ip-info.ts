import ipaddr from 'ipaddr.js';
import type { IpInfo } from './engine-types.js';
import { isHostingAsn } from './hosting-asns.js';
import type { AddressWords, IpDatabase } from './ip-database.js';

/** Longest text worth parsing: a full IPv6 address with an embedded IPv4 part and a zone id. */
const MAX_ADDRESS_LENGTH = 64;

/**
 * ipaddr.js range names of addresses that are globally reachable (IANA special-purpose registries), so
 * not "private or reserved". Every other name (`private`, `loopback`, `linkLocal`, `uniqueLocal`,
 * `carrierGradeNat`, `reserved` — which covers the documentation ranges —, `multicast`, `unspecified`,
 * `broadcast`, `benchmarking`, ...) counts as private.
 */
const GLOBAL_RANGES: ReadonlySet<string> = new Set([
  'unicast',
  '6to4',
  'teredo',
  'rfc6052',
  'as112',
  'as112v6',
  'amt',
  'orchid2',
  'droneRemoteIdProtocolEntityTags',
]);

type ParsedIp = ipaddr.IPv4 | ipaddr.IPv6;

interface ClassifiedIp {
  readonly address: ParsedIp;
  /** ipaddr.js range name (`unicast`, `private`, `loopback`, ...). */
  readonly range: string;
}

// Cheap shape checks before ipaddr.js: its validators signal invalid input by throwing internally, which
// costs tens of microseconds, and its IPv4 parser accepts octal, hex and short forms we do not want.
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6_CHARACTERS = /^[0-9a-f:.]+(?:%[0-9a-z]+)?$/i;

/** Parses a dotted-quad IPv4 (no octal, hex or short forms) or an IPv6 address; undefined when invalid. */
function classify(text: string): ClassifiedIp | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_ADDRESS_LENGTH) return undefined;
  let address: ParsedIp;
  try {
    if (DOTTED_QUAD.test(text)) {
      address = ipaddr.IPv4.parse(text);
    } else if (text.includes(':') && IPV6_CHARACTERS.test(text)) {
      address = ipaddr.IPv6.parse(text);
    } else {
      return undefined;
    }
  } catch {
    return undefined;
  }
  const range = address.range();
  // `::ffff:a.b.c.d` is an IPv4 client seen through a dual-stack socket: classify and look it up as IPv4.
  if (range === 'ipv4Mapped' && address.kind() === 'ipv6') {
    const ipv4 = (address as ipaddr.IPv6).toIPv4Address();
    return { address: ipv4, range: ipv4.range() };
  }
  return { address, range };
}

/**
 * Whether an IP address is private or reserved (loopback, RFC 1918, link-local, unique-local,
 * carrier-grade NAT, documentation, multicast, ...); undefined when the text is not an address.
 */
export function isPrivateAddress(ip: string): boolean | undefined {
  const classified = classify(ip);
  return classified === undefined ? undefined : !GLOBAL_RANGES.has(classified.range);
}

function toWords(address: ParsedIp, ipv4: Uint32Array, ipv6: Uint32Array): AddressWords {
  if (address.kind() === 'ipv4') {
    const [a, b, c, d] = address.toByteArray() as [number, number, number, number];
    ipv4[0] = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
    return ipv4;
  }
  const parts = (address as ipaddr.IPv6).parts;
  for (let word = 0; word < 4; word++) {
    ipv6[word] = (((parts[word * 2] as number) << 16) | (parts[word * 2 + 1] as number)) >>> 0;
  }
  return ipv6;
}

/**
 * Builds `ipInfo(ip)` over a loaded {@link IpDatabase}. The result never throws: it is undefined for text
 * that is not an IP address; `{ private: true }` alone for private and reserved addresses (no lookup);
 * otherwise `private: false` with `country`, `asn` and `datacenter` where the data knows them
 * (`datacenter` is only set when the ASN is known, see {@link isHostingAsn}).
 */
export function createIpInfo(database: IpDatabase): (ip: string) => IpInfo | undefined {
  // Reused scratch buffers: lookups are synchronous, so one pair per lookup function is enough.
  const ipv4 = new Uint32Array(1);
  const ipv6 = new Uint32Array(4);
  return (ip) => {
    const classified = classify(ip);
    if (classified === undefined) return undefined;
    if (!GLOBAL_RANGES.has(classified.range)) return { private: true };
    const words = toWords(classified.address, ipv4, ipv6);
    const country = database.country(words);
    const asn = database.asn(words);
    const info: { country?: string; asn?: number; datacenter?: boolean; private: boolean } = {
      private: false,
    };
    if (country !== undefined) info.country = country;
    if (asn !== undefined) {
      info.asn = asn;
      info.datacenter = isHostingAsn(asn);
    }
    return info;
  };
}
