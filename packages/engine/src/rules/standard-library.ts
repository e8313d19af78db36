import { RE2JS } from 're2js';
import { evaluationGuard as guard } from './evaluation-guard.js';
import { type FunctionDeclaration, type OverloadDeclaration, overload } from './function-registry.js';
import {
  calendarFields,
  floorDiv,
  formatDuration,
  formatTimestamp,
  makeDuration,
  makeTimestamp,
  parseDuration,
  parseTimestamp,
} from './time.js';
import {
  BOOL,
  BYTES,
  type CelType,
  DOUBLE,
  DURATION,
  DYN,
  INT,
  listOf,
  mapOf,
  param,
  STRING,
  TIMESTAMP,
  typeOf,
  UINT,
} from './types.js';
import {
  type CelDuration,
  CelError,
  type CelMap,
  type CelTimestamp,
  CelUint,
  celCompare,
  celEquals,
  codePointLength,
  INT64_MAX,
  INT64_MIN,
  isMap,
  mapGet,
  mapSize,
  typeOfValue,
  UINT64_MAX,
} from './values.js';

const A = param('A');
const B = param('B');
const NUMERIC: readonly CelType[] = [INT, UINT, DOUBLE];

const OVERFLOW = new CelError('integer overflow');
const UINT_OVERFLOW = new CelError('unsigned integer overflow');
const DIVIDE_BY_ZERO = new CelError('divide by zero');
const MODULUS_BY_ZERO = new CelError('modulus by zero');
const NO_SUCH_OVERLOAD = new CelError('no such overload');

function checkedInt(value: bigint): bigint | CelError {
  return value > INT64_MAX || value < INT64_MIN ? OVERFLOW : value;
}

function checkedUint(value: bigint): CelUint | CelError {
  return value > UINT64_MAX || value < 0n ? UINT_OVERFLOW : new CelUint(value);
}

/** Bytes concatenation. */
function concatBytes(left: Uint8Array, right: Uint8Array): Uint8Array {
  const result = new Uint8Array(left.length + right.length);
  result.set(left, 0);
  result.set(right, left.length);
  return result;
}

const sizeCost = (sizes: readonly number[]): number => 1 + (sizes[0] ?? 0) * 0.1;
const scanCost = (sizes: readonly number[]): number => 1 + ((sizes[0] ?? 0) + (sizes[1] ?? 0)) * 0.1;

function arithmetic(): FunctionDeclaration[] {
  return [
    {
      name: '_+_',
      overloads: [
        overload('add_int64', [INT, INT], INT, (a: bigint, b: bigint) => checkedInt(a + b)),
        overload('add_uint64', [UINT, UINT], UINT, (a: CelUint, b: CelUint) =>
          checkedUint(a.value + b.value),
        ),
        overload('add_double', [DOUBLE, DOUBLE], DOUBLE, (a: number, b: number) => a + b),
        overload(
          'add_string',
          [STRING, STRING],
          STRING,
          (a: string, b: string) => (scanAllowed(a.length + b.length) ? a + b : guard.error),
          { cost: scanCost },
        ),
        overload('add_bytes', [BYTES, BYTES], BYTES, concatBytes, { cost: scanCost }),
        overload(
          'add_list',
          [listOf(A), listOf(A)],
          listOf(A),
          (a: unknown[], b: unknown[]) => (scanAllowed(a.length + b.length) ? a.concat(b) : guard.error),
          { cost: scanCost },
        ),
        overload(
          'add_timestamp_duration',
          [TIMESTAMP, DURATION],
          TIMESTAMP,
          (a: CelTimestamp, b: CelDuration) => makeTimestamp(a.nanos + b.nanos),
        ),
        overload(
          'add_duration_timestamp',
          [DURATION, TIMESTAMP],
          TIMESTAMP,
          (a: CelDuration, b: CelTimestamp) => makeTimestamp(a.nanos + b.nanos),
        ),
        overload('add_duration_duration', [DURATION, DURATION], DURATION, (a: CelDuration, b: CelDuration) =>
          makeDuration(a.nanos + b.nanos),
        ),
      ],
    },
    {
      name: '_-_',
      overloads: [
        overload('subtract_int64', [INT, INT], INT, (a: bigint, b: bigint) => checkedInt(a - b)),
        overload('subtract_uint64', [UINT, UINT], UINT, (a: CelUint, b: CelUint) =>
          checkedUint(a.value - b.value),
        ),
        overload('subtract_double', [DOUBLE, DOUBLE], DOUBLE, (a: number, b: number) => a - b),
        // The difference of two timestamps must fit in 64-bit nanoseconds, as in cel-go.
        overload(
          'subtract_timestamp_timestamp',
          [TIMESTAMP, TIMESTAMP],
          DURATION,
          (a: CelTimestamp, b: CelTimestamp) =>
            a.nanos - b.nanos > INT64_MAX || a.nanos - b.nanos < INT64_MIN
              ? new CelError('duration out of range')
              : makeDuration(a.nanos - b.nanos),
        ),
        overload(
          'subtract_timestamp_duration',
          [TIMESTAMP, DURATION],
          TIMESTAMP,
          (a: CelTimestamp, b: CelDuration) => makeTimestamp(a.nanos - b.nanos),
        ),
        overload(
          'subtract_duration_duration',
          [DURATION, DURATION],
          DURATION,
          (a: CelDuration, b: CelDuration) => makeDuration(a.nanos - b.nanos),
        ),
      ],
    },
    {
      name: '_*_',
      overloads: [
        overload('multiply_int64', [INT, INT], INT, (a: bigint, b: bigint) => checkedInt(a * b)),
        overload('multiply_uint64', [UINT, UINT], UINT, (a: CelUint, b: CelUint) =>
          checkedUint(a.value * b.value),
        ),
        overload('multiply_double', [DOUBLE, DOUBLE], DOUBLE, (a: number, b: number) => a * b),
      ],
    },
    {
      name: '_/_',
      overloads: [
        overload('divide_int64', [INT, INT], INT, (a: bigint, b: bigint) =>
          b === 0n ? DIVIDE_BY_ZERO : checkedInt(a / b),
        ),
        overload('divide_uint64', [UINT, UINT], UINT, (a: CelUint, b: CelUint) =>
          b.value === 0n ? DIVIDE_BY_ZERO : new CelUint(a.value / b.value),
        ),
        overload('divide_double', [DOUBLE, DOUBLE], DOUBLE, (a: number, b: number) => a / b),
      ],
    },
    {
      name: '_%_',
      overloads: [
        overload('modulo_int64', [INT, INT], INT, (a: bigint, b: bigint) =>
          b === 0n ? MODULUS_BY_ZERO : a % b,
        ),
        overload('modulo_uint64', [UINT, UINT], UINT, (a: CelUint, b: CelUint) =>
          b.value === 0n ? MODULUS_BY_ZERO : new CelUint(a.value % b.value),
        ),
      ],
    },
    {
      name: '-_',
      overloads: [
        overload('negate_int64', [INT], INT, (a: bigint) => checkedInt(-a)),
        overload('negate_double', [DOUBLE], DOUBLE, (a: number) => -a),
      ],
    },
    { name: '!_', overloads: [overload('logical_not', [BOOL], BOOL, (a: boolean) => !a)] },
  ];
}

function numericValue(value: bigint | number | CelUint): bigint | number {
  return value instanceof CelUint ? value.value : value;
}

type Relation = (left: bigint | number, right: bigint | number) => boolean;

function comparisons(): FunctionDeclaration[] {
  const operators: [string, string, Relation, (order: number) => boolean][] = [
    ['_<_', 'less', (x, y) => x < y, (order) => order < 0],
    ['_<=_', 'less_equals', (x, y) => x <= y, (order) => order <= 0],
    ['_>_', 'greater', (x, y) => x > y, (order) => order > 0],
    ['_>=_', 'greater_equals', (x, y) => x >= y, (order) => order >= 0],
  ];
  const names: Record<string, string> = { int: 'int64', uint: 'uint64', double: 'double' };
  return operators.map(([name, prefix, relation, test]) => {
    const overloads: OverloadDeclaration[] = [];
    for (const left of NUMERIC) {
      for (const right of NUMERIC) {
        const id =
          left === right
            ? `${prefix}_${names[left.kind]}`
            : `${prefix}_${names[left.kind]}_${names[right.kind]}`;
        // CEL compares int or uint with double after converting to double (lossy, as cel-go does);
        // int with uint compares exactly.
        const involvesDouble = left === DOUBLE || right === DOUBLE;
        const implementation =
          left === right && left !== UINT
            ? relation
            : involvesDouble
              ? (a: bigint | number | CelUint, b: bigint | number | CelUint) =>
                  relation(Number(numericValue(a)), Number(numericValue(b)))
              : (a: bigint | CelUint, b: bigint | CelUint) => relation(numericValue(a), numericValue(b));
        overloads.push(overload(id, [left, right], BOOL, implementation));
      }
    }
    for (const type of [STRING, BOOL, BYTES, TIMESTAMP, DURATION]) {
      overloads.push(
        overload(`${prefix}_${type.kind}`, [type, type], BOOL, (a: unknown, b: unknown) => {
          const order = celCompare(a, b);
          return order === undefined ? NO_SUCH_OVERLOAD : test(order);
        }),
      );
    }
    return { name, overloads };
  });
}

function listContains(list: readonly unknown[], value: unknown): boolean | CelError {
  for (let index = 0; index < list.length; index++) {
    if (--guard.credit <= 0 && guard.check()) return guard.error;
    if (celEquals(list[index], value)) return true;
  }
  return false;
}

/**
 * Charges the CPU guard for a scan of `size` characters or elements (a tenth of a unit each, as
 * the cost estimator counts them) before it is made: the scan itself is one native call and
 * cannot be interrupted, so a guard that has run out stops the evaluation before it starts.
 */
function scanAllowed(size: number): boolean {
  return !guard.spend(size * 0.1);
}

/** `_[_]` for any container and key, used when the types are only known at runtime. */
export function indexValue(container: unknown, key: unknown): unknown {
  if (Array.isArray(container)) {
    let index: number;
    if (typeof key === 'bigint') index = Number(key);
    else if (key instanceof CelUint) index = Number(key.value);
    else if (typeof key === 'number' && Number.isInteger(key)) index = key;
    else return NO_SUCH_OVERLOAD;
    if (index < 0 || index >= container.length) return new CelError(`index out of bounds: ${index}`);
    return container[index];
  }
  if (isMap(container)) {
    if (typeof key === 'number' && !Number.isInteger(key)) return new CelError(`no such key: ${key}`);
    const value = mapGet(container, key);
    return value === undefined
      ? new CelError(`no such key: ${String(key instanceof CelUint ? key.value : key)}`)
      : value;
  }
  return NO_SUCH_OVERLOAD;
}

/** `@in` for any container, used when the types are only known at runtime. */
export function inValue(value: unknown, container: unknown): unknown {
  if (Array.isArray(container)) return listContains(container, value);
  if (isMap(container)) {
    if (typeof value === 'number' && !Number.isInteger(value)) return false;
    return mapGet(container, value) !== undefined;
  }
  return NO_SUCH_OVERLOAD;
}

function equality(): FunctionDeclaration[] {
  return [
    {
      name: '_==_',
      overloads: [overload('equals', [A, A], BOOL, (a: unknown, b: unknown) => celEquals(a, b))],
    },
    {
      name: '_!=_',
      overloads: [overload('not_equals', [A, A], BOOL, (a: unknown, b: unknown) => !celEquals(a, b))],
    },
    {
      name: '@in',
      overloads: [
        overload('in_list', [A, listOf(A)], BOOL, (a: unknown, b: unknown[]) => listContains(b, a), {
          cost: (sizes) => 1 + (sizes[1] ?? 0),
        }),
        overload('in_map', [A, mapOf(A, B)], BOOL, (a: unknown, b: CelMap) => inValue(a, b)),
      ],
    },
    {
      name: '_[_]',
      overloads: [
        overload('index_list', [listOf(A), INT], A, (a: unknown[], b: bigint) => indexValue(a, b)),
        overload('index_map', [mapOf(A, B), A], B, (a: CelMap, b: unknown) => indexValue(a, b)),
      ],
    },
  ];
}

function sizeOf(value: unknown): bigint | CelError {
  if (typeof value === 'string') {
    return scanAllowed(value.length) ? BigInt(codePointLength(value)) : guard.error;
  }
  if (value instanceof Uint8Array || Array.isArray(value)) return BigInt(value.length);
  return BigInt(mapSize(value as CelMap));
}

const regexCache = new Map<string, RE2JS | CelError>();

/** Compiles an RE2 pattern once; the cache is bounded because patterns may come from data. */
export function compileRegex(pattern: string): RE2JS | CelError {
  const cached = regexCache.get(pattern);
  if (cached !== undefined) return cached;
  let compiled: RE2JS | CelError;
  try {
    compiled = RE2JS.compile(pattern);
  } catch (error) {
    compiled = new CelError(`invalid regular expression '${pattern}': ${(error as Error).message}`);
  }
  if (regexCache.size >= 10_000) regexCache.clear();
  regexCache.set(pattern, compiled);
  return compiled;
}

/** Longest accepted pattern: patterns may come from event data, and compiling is not free. */
const MAX_PATTERN_LENGTH = 10_000;
const PATTERN_TOO_LONG = new CelError(`regular expression longer than ${MAX_PATTERN_LENGTH} characters`);

function matches(text: string, pattern: string): boolean | CelError {
  if (pattern.length > MAX_PATTERN_LENGTH) return PATTERN_TOO_LONG;
  if (!scanAllowed(text.length + pattern.length)) return guard.error;
  const regex = compileRegex(pattern);
  return regex instanceof CelError ? regex : regex.test(text);
}

function strings(): FunctionDeclaration[] {
  const sizeOverloads = (receiver: boolean): OverloadDeclaration[] => [
    overload(receiver ? 'string_size' : 'size_string', [STRING], INT, sizeOf, { receiver, cost: sizeCost }),
    overload(receiver ? 'bytes_size' : 'size_bytes', [BYTES], INT, sizeOf, { receiver }),
    overload(receiver ? 'list_size' : 'size_list', [listOf(A)], INT, sizeOf, { receiver }),
    overload(receiver ? 'map_size' : 'size_map', [mapOf(A, B)], INT, sizeOf, { receiver }),
  ];
  return [
    { name: 'size', overloads: [...sizeOverloads(false), ...sizeOverloads(true)] },
    {
      name: 'contains',
      overloads: [
        overload(
          'contains_string',
          [STRING, STRING],
          BOOL,
          (a: string, b: string) => (scanAllowed(a.length) ? a.includes(b) : guard.error),
          { receiver: true, cost: scanCost },
        ),
      ],
    },
    {
      name: 'startsWith',
      overloads: [
        overload('starts_with_string', [STRING, STRING], BOOL, (a: string, b: string) => a.startsWith(b), {
          receiver: true,
        }),
      ],
    },
    {
      name: 'endsWith',
      overloads: [
        overload('ends_with_string', [STRING, STRING], BOOL, (a: string, b: string) => a.endsWith(b), {
          receiver: true,
        }),
      ],
    },
    {
      name: 'matches',
      overloads: [
        overload('matches_string', [STRING, STRING], BOOL, matches, { receiver: true, cost: scanCost }),
        overload('matches', [STRING, STRING], BOOL, matches, { cost: scanCost }),
      ],
    },
    {
      name: 'lowerAscii',
      overloads: [
        overload(
          'string_lower_ascii',
          [STRING],
          STRING,
          (a: string) => (scanAllowed(a.length) ? a.replace(/[A-Z]+/g, (s) => s.toLowerCase()) : guard.error),
          {
            receiver: true,
            cost: sizeCost,
          },
        ),
      ],
    },
    {
      name: 'upperAscii',
      overloads: [
        overload(
          'string_upper_ascii',
          [STRING],
          STRING,
          (a: string) => (scanAllowed(a.length) ? a.replace(/[a-z]+/g, (s) => s.toUpperCase()) : guard.error),
          {
            receiver: true,
            cost: sizeCost,
          },
        ),
      ],
    },
  ];
}

const INT_PATTERN = /^[+-]?\d+$/;
const DOUBLE_PATTERN = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;
const TRUE_STRINGS = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE_STRINGS = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** Formats a double as CEL's `string(double)`: shortest round-trip form. */
export function formatDouble(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  const exponent = value === 0 ? 0 : Math.floor(Math.log10(Math.abs(value)));
  if (exponent < -4 || exponent >= 21) {
    const [mantissa, power] = value.toExponential().split('e') as [string, string];
    const sign = power.startsWith('-') ? '-' : '+';
    const digits = power.replace(/^[+-]/, '').padStart(2, '0');
    return `${mantissa}e${sign}${digits}`;
  }
  return String(value);
}

/** 2^63 and 2^64 are exact doubles; int64 and uint64 conversions must stay below them. */
const TWO_TO_63 = 2 ** 63;
const TWO_TO_64 = 2 ** 64;

function doubleToInt(value: number): bigint | CelError {
  if (!Number.isFinite(value) || value <= -TWO_TO_63 || value >= TWO_TO_63) {
    return new CelError('int range error');
  }
  return BigInt(Math.trunc(value));
}

function doubleToUint(value: number): CelUint | CelError {
  if (!Number.isFinite(value) || value <= -1 || value >= TWO_TO_64) return new CelError('uint range error');
  return new CelUint(BigInt(Math.trunc(value)));
}

function conversions(): FunctionDeclaration[] {
  const intRange = (value: bigint): bigint | CelError =>
    value > INT64_MAX || value < INT64_MIN ? new CelError('int range error') : value;
  const uintRange = (value: bigint): CelUint | CelError =>
    value > UINT64_MAX || value < 0n ? new CelError('uint range error') : new CelUint(value);
  return [
    {
      name: 'int',
      overloads: [
        overload('int64_to_int64', [INT], INT, (a: bigint) => a),
        overload('uint64_to_int64', [UINT], INT, (a: CelUint) => intRange(a.value)),
        overload('double_to_int64', [DOUBLE], INT, doubleToInt),
        overload('string_to_int64', [STRING], INT, (a: string) =>
          INT_PATTERN.test(a) ? intRange(BigInt(a)) : new CelError(`cannot convert '${a}' to int`),
        ),
        overload('timestamp_to_int64', [TIMESTAMP], INT, (a: CelTimestamp) =>
          floorDiv(a.nanos, 1_000_000_000n),
        ),
      ],
    },
    {
      name: 'uint',
      overloads: [
        overload('uint64_to_uint64', [UINT], UINT, (a: CelUint) => a),
        overload('int64_to_uint64', [INT], UINT, uintRange),
        overload('double_to_uint64', [DOUBLE], UINT, doubleToUint),
        overload('string_to_uint64', [STRING], UINT, (a: string) =>
          /^\+?\d+$/.test(a) ? uintRange(BigInt(a)) : new CelError(`cannot convert '${a}' to uint`),
        ),
      ],
    },
    {
      name: 'double',
      overloads: [
        overload('double_to_double', [DOUBLE], DOUBLE, (a: number) => a),
        overload('int64_to_double', [INT], DOUBLE, (a: bigint) => Number(a)),
        overload('uint64_to_double', [UINT], DOUBLE, (a: CelUint) => Number(a.value)),
        overload('string_to_double', [STRING], DOUBLE, (a: string) => {
          if (!DOUBLE_PATTERN.test(a)) return new CelError(`cannot convert '${a}' to double`);
          const lower = a.toLowerCase().replace(/^\+/, '');
          if (lower === 'nan') return Number.NaN;
          if (lower.endsWith('inf') || lower.endsWith('infinity')) {
            return lower.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
          }
          return Number(a);
        }),
      ],
    },
    {
      name: 'string',
      overloads: [
        overload('string_to_string', [STRING], STRING, (a: string) => a),
        overload('int64_to_string', [INT], STRING, (a: bigint) => a.toString()),
        overload('uint64_to_string', [UINT], STRING, (a: CelUint) => a.value.toString()),
        overload('double_to_string', [DOUBLE], STRING, formatDouble),
        overload('bool_to_string', [BOOL], STRING, (a: boolean) => String(a)),
        overload('bytes_to_string', [BYTES], STRING, (a: Uint8Array) => {
          try {
            return utf8Decoder.decode(a);
          } catch {
            return new CelError('invalid UTF-8 in bytes, cannot convert to string');
          }
        }),
        overload('timestamp_to_string', [TIMESTAMP], STRING, formatTimestamp),
        overload('duration_to_string', [DURATION], STRING, formatDuration),
      ],
    },
    {
      name: 'bytes',
      overloads: [
        overload('bytes_to_bytes', [BYTES], BYTES, (a: Uint8Array) => a),
        overload('string_to_bytes', [STRING], BYTES, (a: string) => utf8Encoder.encode(a)),
      ],
    },
    {
      name: 'bool',
      overloads: [
        overload('bool_to_bool', [BOOL], BOOL, (a: boolean) => a),
        overload('string_to_bool', [STRING], BOOL, (a: string) =>
          TRUE_STRINGS.has(a)
            ? true
            : FALSE_STRINGS.has(a)
              ? false
              : new CelError(`cannot convert '${a}' to bool`),
        ),
      ],
    },
    {
      name: 'timestamp',
      overloads: [
        overload('timestamp_to_timestamp', [TIMESTAMP], TIMESTAMP, (a: CelTimestamp) => a),
        overload('string_to_timestamp', [STRING], TIMESTAMP, parseTimestamp),
        overload('int64_to_timestamp', [INT], TIMESTAMP, (a: bigint) => makeTimestamp(a * 1_000_000_000n)),
      ],
    },
    {
      name: 'duration',
      overloads: [
        overload('duration_to_duration', [DURATION], DURATION, (a: CelDuration) => a),
        overload('string_to_duration', [STRING], DURATION, parseDuration),
      ],
    },
    { name: 'dyn', overloads: [overload('to_dyn', [A], DYN, (a: unknown) => a)] },
    {
      name: 'type',
      overloads: [
        overload(
          'type',
          [A],
          typeOf(A),
          (a: unknown) => typeOfValue(a) ?? new CelError('value has no CEL type'),
        ),
      ],
    },
  ];
}

type CalendarField =
  | 'fullYear'
  | 'month'
  | 'dayOfYear'
  | 'dayOfMonth'
  | 'dayOfWeek'
  | 'hours'
  | 'minutes'
  | 'seconds'
  | 'milliseconds';

function timeAccessors(): FunctionDeclaration[] {
  const timestampGetters: [string, CalendarField, number][] = [
    ['getFullYear', 'fullYear', 0],
    ['getMonth', 'month', 0],
    ['getDayOfYear', 'dayOfYear', 0],
    ['getDayOfMonth', 'dayOfMonth', 0],
    ['getDate', 'dayOfMonth', 1],
    ['getDayOfWeek', 'dayOfWeek', 0],
    ['getHours', 'hours', 0],
    ['getMinutes', 'minutes', 0],
    ['getSeconds', 'seconds', 0],
    ['getMilliseconds', 'milliseconds', 0],
  ];
  const durationUnits: Record<string, bigint> = {
    getHours: 3_600_000_000_000n,
    getMinutes: 60_000_000_000n,
    getSeconds: 1_000_000_000n,
    getMilliseconds: 1_000_000n,
  };
  return timestampGetters.map(([name, field, adjust]) => {
    const read = (timestamp: CelTimestamp, zone?: string): bigint | CelError => {
      const fields = calendarFields(timestamp, zone);
      return fields instanceof CelError ? fields : BigInt(fields[field] + adjust);
    };
    const overloads: OverloadDeclaration[] = [
      overload(`timestamp_${name}`, [TIMESTAMP], INT, (a: CelTimestamp) => read(a), { receiver: true }),
      overload(
        `timestamp_${name}_with_tz`,
        [TIMESTAMP, STRING],
        INT,
        (a: CelTimestamp, zone: string) => read(a, zone),
        {
          receiver: true,
        },
      ),
    ];
    const unit = durationUnits[name];
    if (unit !== undefined) {
      overloads.push(
        overload(
          `duration_${name}`,
          [DURATION],
          INT,
          name === 'getMilliseconds'
            ? (a: CelDuration) => (a.nanos % 1_000_000_000n) / unit
            : (a: CelDuration) => a.nanos / unit,
          { receiver: true },
        ),
      );
    }
    return { name, overloads };
  });
}

/** Every function of CEL's standard library supported by Vigil. */
export function standardFunctions(): FunctionDeclaration[] {
  return [
    ...arithmetic(),
    ...comparisons(),
    ...equality(),
    ...strings(),
    ...conversions(),
    ...timeAccessors(),
  ];
}
