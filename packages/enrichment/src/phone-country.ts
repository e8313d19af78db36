import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

/** Longest text worth parsing; E.164 numbers have at most 15 digits, formatting adds a few characters. */
const MAX_PHONE_LENGTH = 40;

/**
 * ISO 3166-1 alpha-2 country of a phone number in international form (`+` or `00` then the country
 * calling code), by libphonenumber-js with its `max` metadata, which tells apart countries sharing a
 * calling code (US/CA on +1, GB/GG/JE/IM on +44, RU/KZ on +7). Undefined when the number has no
 * country calling code, is not a possible length for its country, or belongs to no single country
 * (+800, +882, ...). Never throws.
 */
export function phoneCountry(phone: string): string | undefined {
  if (typeof phone !== 'string' || phone.length > MAX_PHONE_LENGTH) return undefined;
  let text = phone.trim();
  if (text.startsWith('00')) text = `+${text.slice(2)}`;
  if (!text.startsWith('+')) return undefined;
  const number = parsePhoneNumberFromString(text);
  if (number === undefined || !number.isPossible()) return undefined;
  return number.country;
}
