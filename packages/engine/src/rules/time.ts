import { CelDuration, CelError, CelTimestamp } from './values.js';

const NANOS_PER_SECOND = 1_000_000_000n;
/** 0001-01-01T00:00:00Z in seconds since the epoch. */
const MIN_TIMESTAMP_SECONDS = -62135596800n;
/** 9999-12-31T23:59:59Z in seconds since the epoch. */
const MAX_TIMESTAMP_SECONDS = 253402300799n;
/** The duration range of google.protobuf.Duration: about ±10000 years. */
const MAX_DURATION_NANOS = 315576000000n * NANOS_PER_SECOND + 999_999_999n;

/** Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const shiftedYear = month <= 2 ? year - 1 : year;
  const era = Math.floor(shiftedYear / 400);
  const yearOfEra = shiftedYear - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/** The proleptic Gregorian date (month 1-12) of a day count since 1970-01-01. */
export function civilFromDays(days: number): { year: number; month: number; day: number } {
  const shifted = days + 719468;
  const era = Math.floor(shifted / 146097);
  const dayOfEra = shifted - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) /
      365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthIndex = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthIndex + 2) / 5) + 1;
  const month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9;
  return { year: era * 400 + yearOfEra + (month <= 2 ? 1 : 0), month, day };
}

/** A timestamp from seconds and nanoseconds, or an error value when out of CEL's range. */
export function makeTimestamp(nanos: bigint): CelTimestamp | CelError {
  const seconds = floorDiv(nanos, NANOS_PER_SECOND);
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS)
    return new CelError('timestamp out of range');
  return new CelTimestamp(nanos);
}

/** A duration, or an error value when out of CEL's range. */
export function makeDuration(nanos: bigint): CelDuration | CelError {
  if (nanos > MAX_DURATION_NANOS || nanos < -MAX_DURATION_NANOS) return new CelError('duration out of range');
  return new CelDuration(nanos);
}

export function floorDiv(value: bigint, divisor: bigint): bigint {
  const quotient = value / divisor;
  return value % divisor !== 0n && value < 0n !== divisor < 0n ? quotient - 1n : quotient;
}

const TIMESTAMP_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parses an RFC 3339 timestamp, as `timestamp('2024-01-02T03:04:05Z')`. */
export function parseTimestamp(text: string): CelTimestamp | CelError {
  const match = TIMESTAMP_PATTERN.exec(text);
  if (match === null) return new CelError(`invalid timestamp '${text}'`);
  const [, year, month, day, hour, minute, second, fraction, , sign, offsetHours, offsetMinutes] = match;
  const monthNumber = Number(month);
  const dayNumber = Number(day);
  if (
    monthNumber < 1 ||
    monthNumber > 12 ||
    dayNumber < 1 ||
    dayNumber > 31 ||
    Number(hour) > 23 ||
    Number(minute) > 59 ||
    Number(second) > 59
  ) {
    return new CelError(`invalid timestamp '${text}'`);
  }
  const days = daysFromCivil(Number(year), monthNumber, dayNumber);
  if (civilFromDays(days).day !== dayNumber) return new CelError(`invalid timestamp '${text}'`);
  let seconds = days * 86400 + Number(hour) * 3600 + Number(minute) * 60 + Number(second);
  if (sign !== undefined) {
    const offset = Number(offsetHours) * 3600 + Number(offsetMinutes) * 60;
    seconds += sign === '+' ? -offset : offset;
  }
  const nanos = fraction === undefined ? 0n : BigInt(fraction.padEnd(9, '0'));
  return makeTimestamp(BigInt(seconds) * NANOS_PER_SECOND + nanos);
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** Formats a timestamp as RFC 3339 in UTC, with as few fractional digits as needed. */
export function formatTimestamp(timestamp: CelTimestamp): string {
  const seconds = floorDiv(timestamp.nanos, NANOS_PER_SECOND);
  const nanos = Number(timestamp.nanos - seconds * NANOS_PER_SECOND);
  const secondsNumber = Number(seconds);
  const days = Math.floor(secondsNumber / 86400);
  const secondOfDay = secondsNumber - days * 86400;
  const { year, month, day } = civilFromDays(days);
  const time = `${pad(Math.floor(secondOfDay / 3600), 2)}:${pad(Math.floor(secondOfDay / 60) % 60, 2)}:${pad(secondOfDay % 60, 2)}`;
  const fraction = nanos === 0 ? '' : `.${pad(nanos, 9).replace(/0+$/, '')}`;
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${time}${fraction}Z`;
}

const DURATION_UNITS: Record<string, bigint> = {
  h: 3600n * NANOS_PER_SECOND,
  m: 60n * NANOS_PER_SECOND,
  s: NANOS_PER_SECOND,
  ms: 1_000_000n,
  us: 1000n,
  µs: 1000n,
  μs: 1000n,
  ns: 1n,
};

/** Parses a Go-style duration such as `1h30m`, `-1.5s`, `100ms`. */
export function parseDuration(text: string): CelDuration | CelError {
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return new CelDuration(0n);
  if (rest === '') return new CelError(`invalid duration '${text}'`);
  let total = 0n;
  const part = /^(\d*)(?:\.(\d*))?(h|ms|m|s|us|µs|μs|ns)/;
  while (rest.length > 0) {
    const match = part.exec(rest);
    if (match === null || (match[1] === '' && (match[2] ?? '') === ''))
      return new CelError(`invalid duration '${text}'`);
    const unit = DURATION_UNITS[match[3] as string] as bigint;
    const whole = BigInt(match[1] || '0');
    const fraction = match[2] ?? '';
    let value = whole * unit;
    if (fraction.length > 0) value += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
    total += value;
    rest = rest.slice(match[0].length);
  }
  return makeDuration(negative ? -total : total);
}

/** Formats a duration as CEL does: seconds with a fraction when needed, as `90s` or `1.5s`. */
export function formatDuration(duration: CelDuration): string {
  const negative = duration.nanos < 0n;
  const magnitude = negative ? -duration.nanos : duration.nanos;
  const seconds = magnitude / NANOS_PER_SECOND;
  const nanos = Number(magnitude % NANOS_PER_SECOND);
  const fraction = nanos === 0 ? '' : `.${pad(nanos, 9).replace(/0+$/, '')}`;
  return `${negative ? '-' : ''}${seconds}${fraction}s`;
}

/** Calendar fields of a timestamp in a time zone. Months and days of year are 0-based, as CEL's getters. */
export interface CalendarFields {
  readonly fullYear: number;
  readonly month: number;
  readonly dayOfYear: number;
  readonly dayOfMonth: number;
  readonly dayOfWeek: number;
  readonly hours: number;
  readonly minutes: number;
  readonly seconds: number;
  readonly milliseconds: number;
}

const zoneFormatters = new Map<string, Intl.DateTimeFormat | undefined>();
const OFFSET_PATTERN = /^([+-])?(\d{1,2}):(\d{2})$/;
const offsetCache = new Map<string, { quarter: number; offset: number }>();

function zoneFormatter(zone: string): Intl.DateTimeFormat | undefined {
  if (zoneFormatters.has(zone)) return zoneFormatters.get(zone);
  let formatter: Intl.DateTimeFormat | undefined;
  try {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    formatter = undefined;
  }
  // Bounded: zone names come from expressions, so a hostile policy must not grow this without limit.
  if (zoneFormatters.size < 1000) zoneFormatters.set(zone, formatter);
  return formatter;
}

/** The offset from UTC, in seconds, of a time zone (IANA name or `±HH:MM`) at an instant. */
export function zoneOffsetSeconds(zone: string, epochSeconds: number): number | undefined {
  if (zone === 'UTC' || zone === 'Z' || zone === '') return 0;
  const offset = OFFSET_PATTERN.exec(zone);
  if (offset !== null) {
    const seconds = Number(offset[2]) * 3600 + Number(offset[3]) * 60;
    return offset[1] === '-' ? -seconds : seconds;
  }
  // Zone offsets change only at transitions, which fall on quarter hours: remember, per zone, the
  // offset of the last quarter hour asked for.
  const quarter = Math.floor(epochSeconds / 900);
  const cached = offsetCache.get(zone);
  if (cached !== undefined && cached.quarter === quarter) return cached.offset;
  const formatter = zoneFormatter(zone);
  if (formatter === undefined) return undefined;
  // Intl covers a limited range of years; clamp to it, zone rules are the same outside.
  const clamped = Math.min(Math.max(epochSeconds, -8.5e12 / 1000), 8.5e12 / 1000);
  const parts = formatter.formatToParts(new Date(clamped * 1000));
  const field = (type: string): number => Number(parts.find((part) => part.type === type)?.value ?? 0);
  const local =
    daysFromCivil(field('year'), field('month'), field('day')) * 86400 +
    field('hour') * 3600 +
    field('minute') * 60 +
    field('second');
  const offsetSeconds = local - Math.floor(clamped);
  if (offsetCache.size >= 1000 && cached === undefined) offsetCache.clear();
  offsetCache.set(zone, { quarter, offset: offsetSeconds });
  return offsetSeconds;
}

/** The calendar fields of a timestamp in a zone, or an error value for an unknown zone. */
export function calendarFields(timestamp: CelTimestamp, zone = 'UTC'): CalendarFields | CelError {
  const seconds = Number(floorDiv(timestamp.nanos, NANOS_PER_SECOND));
  const offset = zoneOffsetSeconds(zone, seconds);
  if (offset === undefined) return new CelError(`unknown time zone '${zone}'`);
  const local = seconds + offset;
  const days = Math.floor(local / 86400);
  const secondOfDay = local - days * 86400;
  const { year, month, day } = civilFromDays(days);
  const nanos = Number(timestamp.nanos - floorDiv(timestamp.nanos, NANOS_PER_SECOND) * NANOS_PER_SECOND);
  return {
    fullYear: year,
    month: month - 1,
    dayOfYear: days - daysFromCivil(year, 1, 1),
    dayOfMonth: day - 1,
    dayOfWeek: (((days + 4) % 7) + 7) % 7,
    hours: Math.floor(secondOfDay / 3600),
    minutes: Math.floor(secondOfDay / 60) % 60,
    seconds: secondOfDay % 60,
    milliseconds: Math.floor(nanos / 1_000_000),
  };
}

let lastParsed: { text: string; result: CelTimestamp | CelError } = {
  text: '1970-01-01T00:00:00Z',
  result: new CelTimestamp(0n),
};

/**
 * Reads a timestamp given by the host: a {@link CelTimestamp}, a `Date`, an RFC 3339 string, or
 * milliseconds since the epoch.
 */
export function toTimestamp(value: unknown): CelTimestamp | CelError {
  if (value instanceof CelTimestamp) return value;
  if (value instanceof Date) {
    const milliseconds = value.getTime();
    return Number.isNaN(milliseconds)
      ? new CelError('invalid date')
      : makeTimestamp(BigInt(milliseconds) * 1_000_000n);
  }
  if (typeof value === 'string') {
    // Every rule reading `event.timestamp` parses the same string: remember the last one.
    if (value === lastParsed.text) return lastParsed.result;
    const result = parseTimestamp(value);
    lastParsed = { text: value, result };
    return result;
  }
  if (typeof value === 'number' && Number.isFinite(value))
    return makeTimestamp(BigInt(Math.trunc(value)) * 1_000_000n);
  return new CelError('value is not a timestamp');
}
