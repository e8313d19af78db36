import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { IpInfo } from '../rules/vigil-functions.js';
import {
  type ByTerm,
  canonicalByTerm,
  checkByTermType,
  emailDomain,
  ipPrefix,
  type KeyServices,
  keyExtractor,
  parseByTerm,
} from './feature-keys.js';

const term = (text: string): ByTerm => {
  const parsed = parseByTerm(text);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed.term;
};
const errorOf = (text: string): string => {
  const parsed = parseByTerm(text);
  return 'error' in parsed ? parsed.error : `parsed as ${JSON.stringify(parsed.term)}`;
};
const noServices: KeyServices = { ipInfo: undefined };
const keyOf = (by: string[], fields: Record<string, unknown>, services = noServices) =>
  keyExtractor(by.map(term))(fields, services);

describe('parseByTerm', () => {
  it('reads plain fields and the three functions, spaces around arguments allowed', () => {
    expect(term('device_id')).toEqual({ kind: 'field', field: 'device_id' });
    expect(term('email_domain(email)')).toEqual({ kind: 'email_domain', field: 'email' });
    expect(term('asn( ip )')).toEqual({ kind: 'asn', field: 'ip' });
    expect(term('ip_prefix(ip, 24)')).toEqual({ kind: 'ip_prefix', field: 'ip', ipv4Bits: 24, ipv6Bits: 64 });
    expect(term('ip_prefix(ip,16 , 48)')).toEqual({
      kind: 'ip_prefix',
      field: 'ip',
      ipv4Bits: 16,
      ipv6Bits: 48,
    });
  });

  it('names what is wrong', () => {
    expect(errorOf('foo(ip)')).toBe("unknown function 'foo'; use email_domain, ip_prefix or asn");
    expect(errorOf('ip_prefix(ip)')).toMatch(/^ip_prefix needs a prefix length/);
    expect(errorOf('ip_prefix(ip, 7)')).toBe('prefix length must be 8..32 for IPv4');
    expect(errorOf('ip_prefix(ip, 33)')).toBe('prefix length must be 8..32 for IPv4');
    expect(errorOf('ip_prefix(ip, 24, 15)')).toBe('prefix length must be 16..128 for IPv6');
    expect(errorOf('ip_prefix(ip, 24, 129)')).toBe('prefix length must be 16..128 for IPv6');
    expect(errorOf('ip_prefix(ip, x)')).toBe('prefix length must be a whole number');
    expect(errorOf('ip_prefix(ip, 24, 64, 1)')).toMatch(/^ip_prefix takes at most two prefix lengths/);
    expect(errorOf('ip_prefix(24, ip)')).toMatch(/^ip_prefix needs a field name first/);
    expect(errorOf('email_domain(email, 2)')).toMatch(/^email_domain takes one field/);
    expect(errorOf('asn()')).toMatch(/^asn needs a field name first/);
    for (const bad of ['', 'a b', 'asn(ip', 'asn(ip))', 'asn(f(ip))', 'event.ip', '1ip', 'asn (ip)'])
      expect(errorOf(bad)).toMatch(/^must be a field name or one of /);
  });

  it('spells each meaning once', () => {
    expect(canonicalByTerm(term('ip_prefix(ip,24)'))).toBe(canonicalByTerm(term('ip_prefix(ip, 24, 64)')));
    expect(canonicalByTerm(term('asn( ip)'))).toBe('asn(ip)');
    expect(canonicalByTerm(term('ip'))).toBe('ip');
  });

  it('checks the field type each item needs', () => {
    expect(checkByTermType(term('ip_prefix(x, 24)'), 'string')).toBe(
      "ip_prefix needs an ip field; 'x' is string",
    );
    expect(checkByTermType(term('asn(x)'), 'email')).toBe("asn needs an ip field; 'x' is email");
    expect(checkByTermType(term('asn(x)'), 'ip')).toBeUndefined();
    expect(checkByTermType(term('email_domain(x)'), 'number')).toBe(
      "email_domain needs an email or string field; 'x' is number",
    );
    expect(checkByTermType(term('email_domain(x)'), 'string')).toBeUndefined();
    expect(checkByTermType(term('email_domain(x)'), 'email')).toBeUndefined();
    expect(checkByTermType(term('x'), 'string_list')).toMatch(/is a list/);
    expect(checkByTermType(term('x'), 'integer')).toBeUndefined();
  });
});

describe('email_domain keys', () => {
  it('is the lower-cased domain after the last @', () => {
    expect(emailDomain('Alice@Example.COM')).toBe('example.com');
    expect(emailDomain('"a@b"@mail.example.org')).toBe('mail.example.org');
    expect(keyOf(['email_domain(email)'], { email: 'BOB@EXAMPLE.com' })).toBe('example.com');
  });

  it('has no value without an @, with nothing before or after it, or for a non-string', () => {
    for (const email of ['no-at-sign', '@example.com', 'someone@', ''])
      expect(keyOf(['email_domain(email)'], { email })).toBeUndefined();
    expect(keyOf(['email_domain(email)'], { email: 42 })).toBeUndefined();
    expect(keyOf(['email_domain(email)'], {})).toBeUndefined();
  });
});

describe('ip_prefix keys', () => {
  it('is the IPv4 network of the prefix', () => {
    expect(ipPrefix('203.0.113.77', 24, 64)).toBe('203.0.113.0/24');
    expect(ipPrefix('203.0.113.5', 24, 64)).toBe('203.0.113.0/24');
    expect(ipPrefix('198.51.100.1', 24, 64)).toBe('198.51.100.0/24');
    expect(ipPrefix('255.255.255.255', 8, 64)).toBe('255.0.0.0/8');
    expect(ipPrefix('10.20.30.40', 32, 64)).toBe('10.20.30.40/32');
    expect(ipPrefix('172.31.200.9', 12, 64)).toBe('172.16.0.0/12');
    expect(ipPrefix('0.0.0.0', 24, 64)).toBe('0.0.0.0/24');
  });

  it('treats an IPv4-mapped IPv6 address as IPv4', () => {
    expect(ipPrefix('::ffff:203.0.113.77', 24, 64)).toBe('203.0.113.0/24');
    expect(ipPrefix('::FFFF:cb00:714d', 24, 64)).toBe('203.0.113.0/24');
  });

  it('is the IPv6 network in RFC 5952 text, with the IPv6 length', () => {
    expect(ipPrefix('2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff', 24, 64)).toBe('2001:db8:aaaa:bbbb::/64');
    expect(ipPrefix('2001:DB8:1:2:3:4:5:6', 24, 48)).toBe('2001:db8:1::/48');
    expect(ipPrefix('2001:db8:1234:5678::1', 24, 36)).toBe('2001:db8:1000::/36');
    expect(ipPrefix('2001:db8::1', 24, 128)).toBe('2001:db8::1/128');
    expect(ipPrefix('2001:0:0:1:0:0:0:1', 24, 128)).toBe('2001:0:0:1::1/128');
    expect(ipPrefix('fe80::1%eth0', 24, 16)).toBe('fe80::/16');
    expect(ipPrefix('1:2:3:4:5:6:7:8', 24, 128)).toBe('1:2:3:4:5:6:7:8/128');
  });

  it('has no value for text that is not an IP address', () => {
    for (const bad of [
      '',
      'localhost',
      '203.0.113',
      '203.0.113.256',
      '203.0.113.05',
      '203.0.113.5.1',
      '1..2.3',
      ' 203.0.113.5',
      '2001:db8::1::2',
      '2001:db8:gggg::1',
      '::ffff:999.1.1.1',
    ])
      expect(ipPrefix(bad, 24, 64), bad).toBeUndefined();
    expect(keyOf(['ip_prefix(ip, 24)'], { ip: 203 })).toBeUndefined();
  });
});

describe('ip_prefix against Node', () => {
  /** A small deterministic generator, so a failure can be replayed. */
  let seed = 42;
  const random = (below: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed % below;
  };
  const group = () => (random(3) === 0 ? 0 : random(65_536));
  /** One of several spellings of the same groups: full, leading zeros, upper case, `::`. */
  const spell = (groups: number[]) => {
    const hex = groups.map((value) => {
      const text = value.toString(16);
      return random(4) === 0 ? text.padStart(4, '0') : random(4) === 0 ? text.toUpperCase() : text;
    });
    const zeros = groups.indexOf(0);
    if (zeros < 0 || random(2) === 0) return hex.join(':');
    let end = zeros;
    while (end < 8 && groups[end] === 0) end++;
    return `${hex.slice(0, zeros).join(':')}::${hex.slice(end).join(':')}`;
  };
  const canonical = (address: string) => new URL(`http://[${address}]`).hostname.slice(1, -1);

  it('formats every IPv6 address as the WHATWG URL serializer does (RFC 5952)', () => {
    for (let round = 0; round < 5000; round++) {
      const groups = Array.from({ length: 8 }, group);
      if (groups.slice(0, 5).every((value) => value === 0) && groups[5] === 0xffff) continue;
      const text = spell(groups);
      expect(isIP(text), text).toBe(6);
      expect(ipPrefix(text, 32, 128), text).toBe(`${canonical(text)}/128`);
    }
  });

  it('accepts exactly the addresses Node accepts (without zones)', () => {
    const pieces = ['1', '0', 'ffff', '12345', ':', '::', '.', '1.2.3.4', '256', 'g', '00', ''];
    for (let round = 0; round < 20_000; round++) {
      let text = '';
      const length = 1 + random(10);
      for (let index = 0; index < length; index++) text += pieces[random(pieces.length)];
      expect(ipPrefix(text, 32, 128) !== undefined, text).toBe(isIP(text) !== 0);
    }
  });
});

describe('asn keys', () => {
  const services: KeyServices = {
    ipInfo: (ip): IpInfo | undefined =>
      ip === '8.8.8.8' || ip === '8.8.4.4'
        ? { asn: 15169, private: false }
        : ip === '10.0.0.1'
          ? { private: true }
          : undefined,
  };

  it('is the AS number from the IP database', () => {
    expect(keyOf(['asn(ip)'], { ip: '8.8.8.8' }, services)).toBe('AS15169');
    expect(keyOf(['asn(ip)'], { ip: '8.8.4.4' }, services)).toBe('AS15169');
  });

  it('has no value when the AS is unknown, the address private, or the database absent', () => {
    expect(keyOf(['asn(ip)'], { ip: '10.0.0.1' }, services)).toBeUndefined();
    expect(keyOf(['asn(ip)'], { ip: 'nonsense' }, services)).toBeUndefined();
    expect(keyOf(['asn(ip)'], { ip: '8.8.8.8' })).toBeUndefined();
  });
});

describe('keys of several items', () => {
  it('joins plain and derived values and has no value when one is missing', () => {
    expect(keyOf(['account_id'], { account_id: 'u-1' })).toBe('u-1');
    expect(keyOf(['amount'], { amount: 12.5 })).toBe('12.5');
    expect(keyOf(['account_id', 'device_id'], { account_id: 'u-1', device_id: 'd' })).toBe('u-1\u0000d');
    expect(keyOf(['account_id', 'device_id'], { account_id: 'u-1' })).toBeUndefined();
    expect(keyOf(['account_id'], { account_id: null })).toBeUndefined();
    expect(
      keyOf(['account_id', 'ip_prefix(ip, 16)', 'email_domain(email)'], {
        account_id: 'u-1',
        ip: '198.51.100.1',
        email: 'x@Y.org',
      }),
    ).toBe('u-1\u0000198.51.0.0/16\u0000y.org');
    expect(
      keyOf(['account_id', 'ip_prefix(ip, 16)'], { account_id: 'u-1', ip: 'not-an-ip' }),
    ).toBeUndefined();
  });
});
