/** An IP address as 16 bytes (IPv4 is stored IPv4-mapped, `::ffff:a.b.c.d`). */
export interface ParsedAddress {
  readonly bytes: Uint8Array;
  readonly version: 4 | 6;
}

/** A CIDR range: the network bytes and the prefix length counted on the 16-byte form. */
export interface ParsedCidr {
  readonly network: Uint8Array;
  readonly prefixBits: number;
}

function parseIpv4(text: string, into: Uint8Array, at: number): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (let index = 0; index < 4; index++) {
    const part = parts[index] as string;
    if (!/^\d{1,3}$/.test(part) || (part.length > 1 && part.startsWith('0'))) return false;
    const value = Number(part);
    if (value > 255) return false;
    into[at + index] = value;
  }
  return true;
}

/** Parses an IPv4 or IPv6 address (no zone, no brackets); undefined when invalid. */
export function parseAddress(text: string): ParsedAddress | undefined {
  const bytes = new Uint8Array(16);
  if (!text.includes(':')) {
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    return parseIpv4(text, bytes, 12) ? { bytes, version: 4 } : undefined;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = parseGroups(halves[0] as string);
  const tail = halves.length === 2 ? parseGroups(halves[1] as string) : [];
  const words: number[] = [];
  const pushGroups = (groups: string[], isLast: boolean): boolean => {
    for (let index = 0; index < groups.length; index++) {
      const group = groups[index] as string;
      if (isLast && index === groups.length - 1 && group.includes('.')) {
        const ipv4 = new Uint8Array(4);
        if (!parseIpv4(group, ipv4, 0)) return false;
        words.push(
          ((ipv4[0] as number) << 8) | (ipv4[1] as number),
          ((ipv4[2] as number) << 8) | (ipv4[3] as number),
        );
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return false;
      words.push(Number.parseInt(group, 16));
    }
    return true;
  };
  if (!pushGroups(head, halves.length === 1)) return undefined;
  const headCount = words.length;
  if (!pushGroups(tail, true)) return undefined;
  const tailWords = words.splice(headCount);
  if (halves.length === 1 && words.length !== 8) return undefined;
  if (halves.length === 2 && words.length + tailWords.length > 7) return undefined;
  while (words.length + tailWords.length < 8) words.push(0);
  words.push(...tailWords);
  for (let index = 0; index < 8; index++) {
    bytes[index * 2] = (words[index] as number) >> 8;
    bytes[index * 2 + 1] = (words[index] as number) & 0xff;
  }
  return { bytes, version: 6 };
}

/** Parses `address/prefix`; undefined when invalid. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  const address = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  const maxBits = address.version === 4 ? 32 : 128;
  let bits = maxBits;
  if (slash >= 0) {
    const prefix = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > maxBits) return undefined;
    bits = Number(prefix);
  }
  return { network: address.bytes, prefixBits: address.version === 4 ? bits + 96 : bits };
}

/** Whether an address lies in a range. */
export function cidrContains(cidr: ParsedCidr, address: ParsedAddress): boolean {
  let remaining = cidr.prefixBits;
  for (let index = 0; index < 16 && remaining > 0; index++) {
    const bits = Math.min(8, remaining);
    const mask = (0xff << (8 - bits)) & 0xff;
    if (((address.bytes[index] as number) & mask) !== ((cidr.network[index] as number) & mask)) return false;
    remaining -= bits;
  }
  return true;
}

const PRIVATE_RANGES = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '100.64.0.0/10',
  '0.0.0.0/8',
  '::1/128',
  '::/128',
  'fc00::/7',
  'fe80::/10',
].map((range) => parseCidr(range) as ParsedCidr);

/** Whether an address is private, loopback, link-local or otherwise not publicly routable. */
export function isPrivateAddress(address: ParsedAddress): boolean {
  return PRIVATE_RANGES.some((range) => cidrContains(range, address));
}
