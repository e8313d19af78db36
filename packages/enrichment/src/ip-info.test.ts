import { beforeAll, describe, expect, it } from 'vitest';
import { IpDatabase } from './ip-database.js';
import { createIpInfo, isPrivateAddress } from './ip-info.js';

// One load of the packaged data for the whole file (about a second).
let ipInfo: ReturnType<typeof createIpInfo>;
beforeAll(() => {
  ipInfo = createIpInfo(IpDatabase.load());
});

describe('ipInfo on the packaged data', () => {
  it('knows Google public DNS: US, AS15169, a data centre', () => {
    expect(ipInfo('8.8.8.8')).toEqual({ country: 'US', asn: 15169, datacenter: true, private: false });
  });

  it('knows Cloudflare 1.1.1.1 by its ASN', () => {
    expect(ipInfo('1.1.1.1')).toMatchObject({ asn: 13335, datacenter: true, private: false });
  });

  it('looks up IPv6 addresses', () => {
    expect(ipInfo('2001:4860:4860::8888')).toMatchObject({ country: 'US', asn: 15169, datacenter: true });
    expect(ipInfo('2606:4700:4700::1111')).toMatchObject({ asn: 13335, private: false });
  });

  it('looks up an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(ipInfo('::ffff:8.8.8.8')).toEqual(ipInfo('8.8.8.8'));
  });

  it('reports an ISP address as not a data centre', () => {
    const info = ipInfo('81.2.69.160');
    expect(info).toMatchObject({ country: 'GB', datacenter: false, private: false });
    expect(info?.asn).toBeTypeOf('number');
  });

  it.each([
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.1',
    '127.0.0.1',
    '169.254.1.1',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fe80::1%eth0',
    'fd00::1',
    '::ffff:10.1.2.3',
  ])('marks %s private, with no country or ASN', (ip) => {
    expect(ipInfo(ip)).toEqual({ private: true });
  });

  it.each(['192.0.2.1', '198.51.100.7', '203.0.113.9', '2001:db8::1', '224.0.0.1', '255.255.255.255'])(
    'marks the documentation, multicast or broadcast address %s reserved',
    (ip) => {
      expect(ipInfo(ip)).toEqual({ private: true });
    },
  );

  it.each([
    '',
    'garbage',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '0x7f.0.0.1',
    '8.8.8.8 ',
    ':::',
    '1::2::3',
    'gggg::1',
    '2001:db8::/32',
    'x'.repeat(100_000),
    `${'1:'.repeat(10_000)}1`,
  ])('returns undefined for %j and never throws', (text) => {
    expect(ipInfo(text)).toBeUndefined();
  });

  it('returns undefined for a non-string at run time', () => {
    expect(ipInfo(undefined as unknown as string)).toBeUndefined();
    expect(ipInfo(42 as unknown as string)).toBeUndefined();
  });
});

describe('isPrivateAddress', () => {
  it('tells private, public and invalid apart', () => {
    expect(isPrivateAddress('10.0.0.1')).toBe(true);
    expect(isPrivateAddress('8.8.8.8')).toBe(false);
    expect(isPrivateAddress('2a00:1450:4001:80b::200e')).toBe(false);
    expect(isPrivateAddress('not an ip')).toBeUndefined();
  });
});
