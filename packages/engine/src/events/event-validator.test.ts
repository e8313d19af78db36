import { describe, expect, it } from 'vitest';
import { compileEventValidator } from './event-validator.js';

const validate = compileEventValidator({
  fields: {
    account_id: { type: 'string', required: true },
    amount: { type: 'number' },
    count: { type: 'integer' },
    trusted: { type: 'boolean' },
    ip: { type: 'ip' },
    email: { type: 'email' },
    phone: { type: 'phone' },
    at: { type: 'timestamp' },
    channel: { type: 'enum', values: ['web', 'app'] },
    tags: { type: 'string_list' },
  },
});

const valid = {
  account_id: 'u-1',
  amount: 12.5,
  count: 3,
  trusted: false,
  ip: '2001:db8::1',
  email: 'a.b@example.co.uk',
  phone: '+14155550123',
  at: '2026-11-24T12:00:00.123+01:00',
  channel: 'app',
  tags: ['x', 'y'],
};

describe('compileEventValidator', () => {
  it('accepts a value of every field type', () => {
    expect(validate(valid)).toEqual([]);
    expect(validate({ account_id: 'only the required one' })).toEqual([]);
  });

  it('lists every problem at once, with its path', () => {
    const errors = validate({
      amount: 'ten',
      count: 1.5,
      trusted: 'yes',
      ip: '999.1.1.1',
      email: 'not-an-email',
      phone: '555-1234',
      at: '2026-11-24 noon',
      channel: 'fax',
      tags: ['ok', 7],
      extra: true,
    });
    expect(errors.map((error) => error.path)).toEqual([
      'fields.account_id',
      'fields.amount',
      'fields.count',
      'fields.trusted',
      'fields.ip',
      'fields.email',
      'fields.phone',
      'fields.at',
      'fields.channel',
      'fields.tags',
      'fields.extra',
    ]);
    expect(errors[0]?.message).toBe('is required');
    expect(errors[8]?.message).toBe('must be one of web, app');
  });

  it('refuses non-finite numbers, unsafe integers, timestamps without a zone and over-long strings', () => {
    const paths = (fields: Record<string, unknown>) =>
      validate({ ...valid, ...fields }).map((error) => error.path);
    expect(paths({ amount: Number.POSITIVE_INFINITY })).toEqual(['fields.amount']);
    expect(paths({ count: 2 ** 53 })).toEqual(['fields.count']);
    expect(paths({ at: '2026-11-24T12:00:00' })).toEqual(['fields.at']);
    expect(paths({ account_id: 'x'.repeat(4097) })).toEqual(['fields.account_id']);
    expect(paths({ tags: Array.from({ length: 1001 }, () => 't') })).toEqual(['fields.tags']);
  });

  it('treats null like an absent field', () => {
    expect(validate({ account_id: null }).map((error) => error.message)).toEqual(['is required']);
    expect(validate({ ...valid, amount: null })).toEqual([]);
  });
});
