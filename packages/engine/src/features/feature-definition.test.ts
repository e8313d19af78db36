import type { FeatureInput } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import type { EventTypeRecord } from '../ports/config-store.js';
import { checkFeature, type FeatureRecord, featureProgram, featureUsesIpData } from './feature-definition.js';

const eventType = (name: string, fields: EventTypeRecord['schema']['fields']): EventTypeRecord => ({
  tenantId: 't',
  name,
  schema: { fields },
  version: 1,
  updatedAt: '2026-11-25T00:00:00.000Z',
});
const login = eventType('login', {
  account_id: { type: 'string', required: true },
  ip: { type: 'ip' },
  email: { type: 'email' },
  username: { type: 'string' },
  amount: { type: 'number' },
  tags: { type: 'string_list' },
});
const signup = eventType('signup', { account_id: { type: 'string' }, ip: { type: 'string' } });
const types = new Map([
  ['login', login],
  ['signup', signup],
]);
const check = (definition: Partial<FeatureInput>) =>
  checkFeature(
    { aggregation: 'count', by: ['account_id'], window: '1h', event_types: ['login'], ...definition },
    (name) => types.get(name),
  );

describe('checkFeature on `by` items', () => {
  it('accepts plain fields and derived items on fields of the right type', () => {
    expect(check({ by: ['account_id', 'ip_prefix(ip, 24)', 'email_domain(email)', 'asn(ip)'] })).toEqual([]);
    expect(check({ by: ['email_domain(username)'] })).toEqual([]);
    expect(check({ aggregation: 'distinct', field: 'account_id', by: ['email_domain(email)'] })).toEqual([]);
  });

  it('reports each problem at its index', () => {
    expect(
      check({
        by: ['foo(ip)', 'ip_prefix(ip, 40)', 'ip_prefix(email, 24)', 'email_domain(amount)', 'asn(nope)'],
      }),
    ).toEqual([
      { path: 'by.0', message: "unknown function 'foo'; use email_domain, ip_prefix or asn" },
      { path: 'by.1', message: 'prefix length must be 8..32 for IPv4' },
      { path: 'by.2', message: "ip_prefix needs an ip field; 'email' is email" },
      { path: 'by.3', message: "email_domain needs an email or string field; 'amount' is number" },
      { path: 'by.4', message: "'nope' is not a field of 'login'" },
    ]);
    expect(check({ by: ['tags'] })).toEqual([
      { path: 'by.0', message: "'tags' is a list; group by a single value" },
    ]);
  });

  it('checks the field type in every listed event type', () => {
    expect(check({ by: ['asn(ip)'], event_types: ['login', 'signup'] })).toEqual([
      { path: 'by.0', message: "asn needs an ip field; 'ip' is string" },
    ]);
  });

  it('refuses the same item twice, however it is spelt', () => {
    expect(check({ by: ['ip_prefix(ip,24)', 'ip_prefix(ip, 24, 64)'] })).toEqual([
      { path: 'by', message: 'names the same item twice' },
    ]);
    expect(check({ by: ['ip', 'ip'] })).toEqual([{ path: 'by', message: 'names the same item twice' }]);
    expect(check({ by: ['ip', 'ip_prefix(ip, 24)', 'ip_prefix(ip, 16)'] })).toEqual([]);
  });
});

describe('featureProgram keys', () => {
  const record = (by: string[]): FeatureRecord => ({
    tenantId: 't',
    name: 'f',
    version: 1,
    updatedAt: '2026-11-25T00:00:00.000Z',
    definition: { aggregation: 'count', by, window: '1h', event_types: ['login'] },
  });

  it('holds a compiled key and whether it needs IP data', () => {
    const program = featureProgram(record(['ip_prefix(ip, 24)', 'account_id']), login);
    expect(program?.usesIpData).toBe(false);
    expect(program?.key({ ip: '203.0.113.9', account_id: 'a' }, { ipInfo: undefined })).toBe(
      '203.0.113.0/24\u0000a',
    );
    const asn = featureProgram(record(['asn(ip)']), login);
    expect(asn?.usesIpData).toBe(true);
    expect(asn?.key({ ip: '8.8.8.8' }, { ipInfo: () => ({ asn: 15169 }) })).toBe('AS15169');
    expect(featureUsesIpData({ by: ['account_id', 'asn(ip)'] })).toBe(true);
    expect(featureUsesIpData({ by: ['account_id', 'ip_prefix(ip, 24)'] })).toBe(false);
  });

  it('is undefined when the definition no longer fits the event type', () => {
    expect(featureProgram(record(['ip_prefix(ip, 24)']), signup)).toBeUndefined();
  });
});
