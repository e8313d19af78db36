import { describe, expect, it } from 'vitest';
import { compile } from './compiler.js';
import { paymentActivation, paymentEnvironment } from './test-environment.js';
import { CelError } from './values.js';
import type { RuleServices } from './vigil-functions.js';

const environment = paymentEnvironment();

const services: RuleServices = {
  inList: (listName, value) => listName === 'blocked_ips' && value === '198.51.100.9',
  ipInfo: (ip) => (ip === '203.0.113.7' ? { country: 'FR', asn: 16276, datacenter: true } : undefined),
  isDisposableEmail: (email) => email.endsWith('@mailinator.com'),
  phoneCountry: (phone) => (phone.startsWith('+33') ? 'FR' : undefined),
  userAgent: (userAgent) => ({
    browser: 'Firefox',
    os: 'Linux',
    device: 'desktop',
    bot: userAgent.includes('bot'),
  }),
};

function evaluate(
  text: string,
  event: Record<string, unknown> = {},
  injected: RuleServices = services,
): unknown {
  const result = compile(environment, text);
  if (!result.ok) throw new Error(result.errors.map((error) => error.formatted).join('\n'));
  return result.program.evaluate(paymentActivation(event), injected);
}

describe('Vigil functions', () => {
  it('in_list calls the injected list lookup', () => {
    expect(evaluate("in_list('blocked_ips', event.ip)")).toBe(false);
    expect(evaluate("in_list('blocked_ips', event.ip)", { ip: '198.51.100.9' })).toBe(true);
  });

  it('cidr_match handles IPv4, IPv6 and IPv4-mapped addresses', () => {
    expect(evaluate("cidr_match(event.ip, '203.0.113.0/24')")).toBe(true);
    expect(evaluate("cidr_match(event.ip, '10.0.0.0/8')")).toBe(false);
    expect(evaluate("cidr_match(event.ip, '2001:db8::/32')", { ip: '2001:db8::1' })).toBe(true);
    expect(evaluate("cidr_match(event.ip, '2001:db8::/32')", { ip: '2001:db9::1' })).toBe(false);
    expect(evaluate("cidr_match(event.ip, '10.0.0.0/8')", { ip: '::ffff:10.1.2.3' })).toBe(true);
    expect(evaluate("cidr_match(event.ip, '0.0.0.0/0')")).toBe(true);
    expect(evaluate("cidr_match(event.ip, '203.0.113.7')")).toBe(true);
    expect(evaluate("cidr_match(event.ip, '10.0.0.0/8')", { ip: 'not-an-ip' })).toBeInstanceOf(CelError);
  });

  it('ip_info returns country, asn, datacenter and private', () => {
    expect(evaluate("ip_info(event.ip).country == 'FR' && ip_info(event.ip).asn == 16276")).toBe(true);
    expect(evaluate('ip_info(event.ip).datacenter && !ip_info(event.ip).private')).toBe(true);
    expect(evaluate('ip_info(event.ip).private', { ip: '192.168.1.10' })).toBe(true);
    expect(evaluate('has(ip_info(event.ip).country)', { ip: '192.168.1.10' })).toBe(false);
    expect(compile(environment, 'ip_info(event.ip).contry == "FR"').ok).toBe(false);
  });

  it('email_domain and is_disposable_email', () => {
    expect(evaluate("email_domain(event.email) == 'example.com'")).toBe(true);
    expect(evaluate('is_disposable_email(event.email)')).toBe(false);
    expect(evaluate('is_disposable_email(event.email)', { email: 'x@mailinator.com' })).toBe(true);
    expect(evaluate('email_domain(event.email)', { email: 'nobody' })).toBeInstanceOf(CelError);
  });

  it('phone_country and ua', () => {
    expect(evaluate("phone_country(event.phone) == 'FR'")).toBe(true);
    expect(evaluate("phone_country(event.phone) == ''", { phone: '+10000' })).toBe(true);
    expect(evaluate("ua(event.user_agent).browser == 'Firefox' && !ua(event.user_agent).bot")).toBe(true);
    expect(evaluate('ua(event.user_agent).bot', { user_agent: 'Googlebot' })).toBe(true);
  });

  it('hour_of_day reads the hour in a time zone', () => {
    expect(evaluate("hour_of_day(event.timestamp, 'UTC') == 12")).toBe(true);
    expect(evaluate("hour_of_day(event.timestamp, 'America/New_York') == 8")).toBe(true);
    expect(evaluate("hour_of_day(event.timestamp, 'Nowhere/City')")).toBeInstanceOf(CelError);
  });

  it('haversine_km computes great-circle distances', () => {
    const distance = evaluate('haversine_km(event.latitude, event.longitude, 51.5074, -0.1278)') as number;
    expect(distance).toBeGreaterThan(340);
    expect(distance).toBeLessThan(350);
  });

  it('turns a throwing service into an error value', () => {
    const failing: RuleServices = {
      inList: () => {
        throw new Error('list store down');
      },
    };
    const value = evaluate("in_list('blocked_ips', event.ip)", {}, failing);
    expect(value).toBeInstanceOf(CelError);
    expect((value as CelError).message).toContain('list store down');
    expect(evaluate("in_list('blocked_ips', event.ip) || true", {}, failing)).toBe(true);
  });
});
