import { describe, expect, it } from 'vitest';
import { phoneCountry } from './phone-country.js';

describe('phoneCountry', () => {
  it.each([
    ['+14155550123', 'US'],
    ['+1 (415) 555-0123', 'US'],
    ['+16135550123', 'CA'],
    ['+447400123456', 'GB'],
    ['+4915123456789', 'DE'],
    ['0049 151 23456789', 'DE'],
    ['+33612345678', 'FR'],
    ['+77012345678', 'KZ'],
    ['+78005553535', 'RU'],
  ])('%s is in %s', (phone, country) => {
    expect(phoneCountry(phone)).toBe(country);
  });

  it('tells Crown Dependencies apart on +44: 07911 1xxxxx is a Guernsey mobile range', () => {
    // The often-quoted example "07911 123456" falls in Guernsey's block in libphonenumber's metadata.
    expect(phoneCountry('+447911123456')).toBe('GG');
  });

  it.each(['', 'garbage', '+', '4155550123', '+999123456', '+49 1', '+80012345678', `+${'1'.repeat(100)}`])(
    'returns undefined for %j',
    (phone) => {
      expect(phoneCountry(phone)).toBeUndefined();
    },
  );

  it('returns undefined for a non-string at run time', () => {
    expect(phoneCountry(null as unknown as string)).toBeUndefined();
  });
});
