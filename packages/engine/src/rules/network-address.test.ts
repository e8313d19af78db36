import { describe, expect, it } from 'vitest';
import { cidrContains, isPrivateAddress, parseAddress, parseCidr } from './network-address.js';

function contains(cidr: string, address: string): boolean {
  const range = parseCidr(cidr);
  const parsed = parseAddress(address);
  if (range === undefined || parsed === undefined) throw new Error(`unparsable ${cidr} or ${address}`);
  return cidrContains(range, parsed);
}

describe('network addresses', () => {
  it('parses IPv4 and IPv6 forms', () => {
    expect(parseAddress('192.0.2.1')?.version).toBe(4);
    expect(parseAddress('2001:db8::1')?.version).toBe(6);
    expect(parseAddress('::')?.version).toBe(6);
    expect(parseAddress('::ffff:192.0.2.1')?.version).toBe(6);
    expect(parseAddress('1:2:3:4:5:6:7:8')?.version).toBe(6);
  });

  it('refuses malformed addresses and ranges', () => {
    for (const text of [
      '256.1.1.1',
      '1.2.3',
      '01.2.3.4',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      'g::1',
      '',
      'a.b.c.d',
    ]) {
      expect(parseAddress(text)).toBeUndefined();
    }
    for (const text of ['10.0.0.0/33', '::/129', '10.0.0.0/x', '10.0.0/8'])
      expect(parseCidr(text)).toBeUndefined();
  });

  it('matches ranges bit by bit', () => {
    expect(contains('10.0.0.0/8', '10.255.255.255')).toBe(true);
    expect(contains('10.0.0.0/8', '11.0.0.0')).toBe(false);
    expect(contains('192.168.1.128/25', '192.168.1.200')).toBe(true);
    expect(contains('192.168.1.128/25', '192.168.1.127')).toBe(false);
    expect(contains('2001:db8::/33', '2001:db8:7fff::1')).toBe(true);
    expect(contains('2001:db8::/33', '2001:db8:8000::1')).toBe(false);
    expect(contains('::ffff:0:0/96', '198.51.100.1')).toBe(true);
    expect(contains('198.51.100.0/24', '::ffff:198.51.100.7')).toBe(true);
  });

  it('knows private and reserved ranges', () => {
    for (const address of [
      '10.1.2.3',
      '172.16.0.1',
      '192.168.0.1',
      '127.0.0.1',
      '169.254.1.1',
      '::1',
      'fd00::1',
      'fe80::1',
    ]) {
      expect(isPrivateAddress(parseAddress(address) as NonNullable<ReturnType<typeof parseAddress>>)).toBe(
        true,
      );
    }
    for (const address of ['8.8.8.8', '172.32.0.1', '2001:4860::8888']) {
      expect(isPrivateAddress(parseAddress(address) as NonNullable<ReturnType<typeof parseAddress>>)).toBe(
        false,
      );
    }
  });
});
