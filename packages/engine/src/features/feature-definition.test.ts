import type { FeatureInput } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import type { EventTypeRecord } from '../ports/config-store.js';
import {
  checkFeature,
  type FeatureRecord,
  featureProgram,
  featureUsesIpData,
  featureValueType,
} from './feature-definition.js';

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

describe('last over string-like fields', () => {
  const payment = eventType('payment', {
    account_id: { type: 'string' },
    country: { type: 'enum', values: ['FR', 'DE'] },
    phone: { type: 'phone' },
    amount: { type: 'string' },
    at: { type: 'timestamp' },
    ok: { type: 'boolean' },
  });
  const all = new Map([...types, ['payment', payment]]);
  const checkIn = (definition: Partial<FeatureInput>) =>
    checkFeature(
      { aggregation: 'last', by: ['account_id'], window: '1h', event_types: ['login'], ...definition },
      (name) => all.get(name),
    );
  const valueType = (definition: Partial<FeatureInput>) =>
    featureValueType({ aggregation: 'last', event_types: ['login'], ...definition } as FeatureInput, (name) =>
      all.get(name),
    );

  it('accepts string, ip, email, phone and enum fields, whose value is a string', () => {
    for (const field of ['username', 'ip', 'email']) {
      expect(checkIn({ field })).toEqual([]);
      expect(valueType({ field })).toBe('string');
    }
    for (const field of ['country', 'phone']) {
      expect(checkIn({ field, event_types: ['payment'] })).toEqual([]);
      expect(valueType({ field, event_types: ['payment'] })).toBe('string');
    }
    expect(checkIn({ field: 'ip', event_types: ['login', 'signup'] })).toEqual([]);
    expect(valueType({ field: 'ip', event_types: ['signup', 'login'] })).toBe('string');
  });

  it('keeps last of a number a double, and the other aggregations as they were', () => {
    expect(checkIn({ field: 'amount' })).toEqual([]);
    expect(valueType({ field: 'amount' })).toBe('double');
    expect(valueType({ aggregation: 'count', field: undefined })).toBe('int');
    expect(valueType({ aggregation: 'distinct', field: 'username' })).toBe('int');
    expect(valueType({ aggregation: 'max', field: 'amount' })).toBe('double');
  });

  it('refuses boolean, timestamp and list fields, and a field that is text in one event type and a number in another', () => {
    expect(checkIn({ field: 'ok', event_types: ['payment'] })).toEqual([
      {
        path: 'field',
        message: "'last' needs a number, integer, string, ip, email, phone or enum field; 'ok' is boolean",
      },
    ]);
    expect(checkIn({ field: 'at', event_types: ['payment'] })).toEqual([
      {
        path: 'field',
        message: "'last' needs a number, integer, string, ip, email, phone or enum field; 'at' is timestamp",
      },
    ]);
    expect(checkIn({ field: 'tags' })).toEqual([
      { path: 'field', message: "'tags' is a list; aggregate a single value" },
    ]);
    expect(checkIn({ field: 'amount', event_types: ['login', 'payment'] })).toEqual([
      {
        path: 'field',
        message:
          "'amount' is string in 'payment' but a number in an earlier event type; 'last' needs one kind",
      },
    ]);
    // Sum and friends still need a number.
    expect(checkIn({ aggregation: 'sum', field: 'username' })).toEqual([
      { path: 'field', message: "'sum' needs a number or integer field" },
    ]);
  });

  it('gives the program a counter of strings', () => {
    const record = (field: string): FeatureRecord => ({
      tenantId: 't',
      name: 'last_x',
      version: 1,
      updatedAt: '2026-11-25T00:00:00.000Z',
      definition: { aggregation: 'last', field, by: ['account_id'], window: '1h', event_types: ['login'] },
    });
    expect(featureProgram(record('ip'), login)?.counter).toMatchObject({
      aggregation: 'last',
      valueType: 'string',
    });
    expect(featureProgram(record('amount'), login)?.counter.valueType).toBeUndefined();
  });
});
