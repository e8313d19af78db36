import { describe, expect, it } from 'vitest';
import { type ListValueType, normaliseListValue } from './list-values.js';

const stored = (type: ListValueType, value: unknown) => {
  const result = normaliseListValue(type, value);
  return result.ok ? result.value : `error: ${result.message}`;
};

describe('list values', () => {
  it('stores IPs and ranges in one canonical text', () => {
    expect(stored('ip', ' 192.0.2.1 ')).toBe('192.0.2.1');
    expect(stored('ip', '192.0.2.1/32')).toBe('192.0.2.1');
    expect(stored('ip', '192.0.2.77/24')).toBe('192.0.2.0/24');
    expect(stored('ip', '::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(stored('ip', '2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(stored('ip', '2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(stored('ip', '2001:db8::/128')).toBe('2001:db8::');
    expect(stored('ip', '2001:db8:abcd:1234::/32')).toBe('2001:db8::/32');
    expect(stored('ip', '::')).toBe('::');
    expect(stored('ip', '1.0.0.0/1')).toBe('0.0.0.0/1');
  });

  it('refuses what is not an address or range, and /0', () => {
    for (const value of [
      '256.1.1.1',
      '1.2.3',
      'example.com',
      '1.2.3.4/33',
      '::/129',
      '1.2.3.4/x',
      '01.2.3.4',
    ]) {
      expect(stored('ip', value), value).toMatch(/^error: .*(IP address|prefix)/);
    }
    expect(stored('ip', '0.0.0.0/0')).toMatch(/\/0 range/);
    expect(stored('ip', '::/0')).toMatch(/\/0 range/);
  });

  it('normalises emails, phones, domains and countries, and keeps ids as given', () => {
    expect(stored('email', ' Fraud@Example.COM ')).toBe('fraud@example.com');
    expect(stored('email', 'no-at-sign')).toMatch(/^error: is not an email/);
    expect(stored('phone', '+1 (415) 555-0123')).toBe('+14155550123');
    expect(stored('phone', '4155550123')).toMatch(/^error: is not a phone/);
    expect(stored('domain', 'Mailinator.com.')).toBe('mailinator.com');
    expect(stored('domain', 'not a domain')).toMatch(/^error/);
    expect(stored('country', 'de')).toBe('DE');
    expect(stored('country', 'DEU')).toMatch(/^error/);
    expect(stored('device', 'Dev-ABC')).toBe('Dev-ABC');
    expect(stored('card', 'tok_4242')).toBe('tok_4242');
    expect(stored('account', 12345)).toBe('12345');
    expect(stored('string', '')).toBe('error: must not be empty');
    expect(stored('string', { value: 1 })).toBe('error: must be a string');
    expect(stored('string', 'x'.repeat(513))).toMatch(/longer than 512/);
  });
});
