import { describe, expect, it } from 'vitest';
import { IpDatabase } from './ip-database.js';
import { createIpInfo } from './ip-info.js';

const ipv4 = (text: string) => text.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);

/** Small fixtures in ip-location-db's numeric layout. */
function database(countryIpv4: string, asnIpv4 = '', countryIpv6 = '', asnIpv6 = ''): IpDatabase {
  return IpDatabase.fromCsv({ countryIpv4, countryIpv6, asnIpv4, asnIpv6 });
}

describe('IpDatabase', () => {
  const nested = [
    `${ipv4('8.0.0.0')},${ipv4('8.255.255.255')},US`,
    `${ipv4('8.8.0.0')},${ipv4('8.8.255.255')},CA`,
    `${ipv4('8.8.8.0')},${ipv4('8.8.8.255')},MX`,
    `${ipv4('9.0.0.0')},${ipv4('9.0.0.255')},FR`,
  ].join('\n');

  it('answers the most specific of nested ranges, and the enclosing one around it', () => {
    const info = createIpInfo(database(nested));
    expect(info('8.8.8.8')?.country).toBe('MX');
    expect(info('8.8.9.1')?.country).toBe('CA');
    expect(info('8.9.0.1')?.country).toBe('US');
    expect(info('8.0.0.0')?.country).toBe('US');
    expect(info('8.255.255.255')?.country).toBe('US');
    expect(info('9.0.0.1')?.country).toBe('FR');
  });

  it('knows nothing outside the ranges, but still says the address is public', () => {
    const info = createIpInfo(database(nested));
    expect(info('7.255.255.255')).toEqual({ private: false });
    expect(info('9.0.1.0')).toEqual({ private: false });
    expect(info('2a00::1')).toEqual({ private: false });
  });

  it('lets a later, partly overlapping range win where they overlap', () => {
    const csv = [
      `${ipv4('1.0.0.0')},${ipv4('1.0.0.20')},AU`,
      `${ipv4('1.0.0.10')},${ipv4('1.0.0.30')},NZ`,
    ].join('\n');
    const info = createIpInfo(database(csv));
    expect(info('1.0.0.5')?.country).toBe('AU');
    expect(info('1.0.0.15')?.country).toBe('NZ');
    expect(info('1.0.0.25')?.country).toBe('NZ');
  });

  it('reads ASNs and derives the data-centre flag from them', () => {
    const asn = [
      `${ipv4('3.0.0.0')},${ipv4('3.255.255.255')},16509,"Amazon.com, Inc."`,
      `${ipv4('4.0.0.0')},${ipv4('4.0.0.255')},3356,Level 3`,
      `${ipv4('5.0.0.0')},${ipv4('5.0.0.255')},0,Not routed`,
    ].join('\r\n');
    const info = createIpInfo(database('', asn));
    expect(info('3.1.2.3')).toEqual({ asn: 16509, datacenter: true, private: false });
    expect(info('4.0.0.1')).toEqual({ asn: 3356, datacenter: false, private: false });
    expect(info('5.0.0.1')).toEqual({ private: false });
  });

  it('compares IPv6 ranges on all 128 bits', () => {
    // 2001:4860::/32 and 2001:4860:4860::8888/128 as decimal integers.
    const start = (0x2001_4860n << 96n).toString();
    const end = ((0x2001_4860n << 96n) | ((1n << 96n) - 1n)).toString();
    const single = ((0x2001_4860_4860n << 80n) | 0x8888n).toString();
    const countryIpv6 = `${start},${end},US\n${single},${single},CH\n`;
    const info = createIpInfo(database('', '', countryIpv6));
    expect(info('2001:4860:4860::8888')?.country).toBe('CH');
    expect(info('2001:4860:4860::8889')?.country).toBe('US');
    expect(info('2001:4861::1')?.country).toBeUndefined();
  });

  it('refuses malformed and unsorted files with the line number', () => {
    expect(() => database('1,2,US\n3,4')).toThrow(/line 2/);
    expect(() => database('1,2,USA')).toThrow(/line 1/);
    expect(() => database('1,x,US')).toThrow(/line 1/);
    expect(() => database('10,20,US\n1,2,FR')).toThrow(/not sorted/);
  });

  it('counts its ranges', () => {
    expect(database(nested).rangeCount).toBe(4);
  });
});
