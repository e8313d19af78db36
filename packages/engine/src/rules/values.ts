/**
 * Runtime values. The representation, chosen for speed on the hot path:
 *
 * | CEL type    | JavaScript                                               |
 * | ----------- | -------------------------------------------------------- |
 * | `int`       | `bigint` (exact 64-bit, overflow checked)                 |
 * | `uint`      | {@link CelUint} (a `bigint` in a wrapper, to tell it from int) |
 * | `double`    | `number`                                                 |
 * | `bool`      | `boolean`                                                |
 * | `string`    | `string`                                                 |
 * | `bytes`     | `Uint8Array`                                             |
 * | `null_type` | `null`                                                   |
 * | `list`      | array                                                    |
 * | `map`       | {@link CelMap}, or a plain object with string keys       |
 * | `timestamp` | {@link CelTimestamp}                                     |
 * | `duration`  | {@link CelDuration}                                      |
 * | `type`      | {@link CelTypeValue}                                     |
 * | error       | {@link CelError}: errors are values, never thrown         |
 */

/** An evaluation error, carried as a value (division by zero, missing key, overflow, ...). */
export class CelError {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/** An unsigned 64-bit integer. */
export class CelUint {
  readonly value: bigint;
  constructor(value: bigint) {
    this.value = value;
  }
}

/** A point in time, in nanoseconds since the Unix epoch (UTC), years 0001 to 9999. */
export class CelTimestamp {
  readonly nanos: bigint;
  constructor(nanos: bigint) {
    this.nanos = nanos;
  }
}

/** A signed span of time in nanoseconds, within ±10000 years. */
export class CelDuration {
  readonly nanos: bigint;
  constructor(nanos: bigint) {
    this.nanos = nanos;
  }
}

/** A type as a runtime value, as returned by `type(x)` and named by `int`, `string`, ... */
export class CelTypeValue {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

export type MapKey = string | boolean | bigint;

/** A CEL map with int, uint, bool or string keys; numerically equal keys are the same key. */
export class CelMap {
  private readonly entries = new Map<MapKey, readonly [unknown, unknown]>();

  get size(): number {
    return this.entries.size;
  }

  /** Adds an entry; false when an equal key is already present. */
  set(key: unknown, value: unknown): boolean {
    const normalized = normalizeKey(key);
    if (normalized === undefined || this.entries.has(normalized)) return false;
    this.entries.set(normalized, [key, value]);
    return true;
  }

  /** The value at a key, or undefined when absent. */
  get(key: unknown): unknown {
    const normalized = normalizeKey(key);
    return normalized === undefined ? undefined : this.entries.get(normalized)?.[1];
  }

  has(key: unknown): boolean {
    const normalized = normalizeKey(key);
    return normalized !== undefined && this.entries.has(normalized);
  }

  keys(): unknown[] {
    const keys: unknown[] = [];
    for (const entry of this.entries.values()) keys.push(entry[0]);
    return keys;
  }

  entryList(): (readonly [unknown, unknown])[] {
    return [...this.entries.values()];
  }
}

function normalizeKey(key: unknown): MapKey | undefined {
  switch (typeof key) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return key;
    case 'number':
      return Number.isInteger(key) ? BigInt(key) : undefined;
    default:
      return key instanceof CelUint ? key.value : undefined;
  }
}

/** Whether a value is a plain object used as a string-keyed map. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

export const INT64_MIN = -9223372036854775808n;
export const INT64_MAX = 9223372036854775807n;
export const UINT64_MAX = 18446744073709551615n;

export const TYPE_VALUES = {
  int: new CelTypeValue('int'),
  uint: new CelTypeValue('uint'),
  double: new CelTypeValue('double'),
  bool: new CelTypeValue('bool'),
  string: new CelTypeValue('string'),
  bytes: new CelTypeValue('bytes'),
  null_type: new CelTypeValue('null_type'),
  list: new CelTypeValue('list'),
  map: new CelTypeValue('map'),
  type: new CelTypeValue('type'),
  timestamp: new CelTypeValue('google.protobuf.Timestamp'),
  duration: new CelTypeValue('google.protobuf.Duration'),
} as const;

/** The runtime type of a value, or undefined for values CEL does not know. */
export function typeOfValue(value: unknown): CelTypeValue | undefined {
  switch (typeof value) {
    case 'boolean':
      return TYPE_VALUES.bool;
    case 'bigint':
      return TYPE_VALUES.int;
    case 'number':
      return TYPE_VALUES.double;
    case 'string':
      return TYPE_VALUES.string;
    case 'object':
      if (value === null) return TYPE_VALUES.null_type;
      if (Array.isArray(value)) return TYPE_VALUES.list;
      if (value instanceof CelUint) return TYPE_VALUES.uint;
      if (value instanceof Uint8Array) return TYPE_VALUES.bytes;
      if (value instanceof CelMap || isPlainObject(value)) return TYPE_VALUES.map;
      if (value instanceof CelTimestamp) return TYPE_VALUES.timestamp;
      if (value instanceof CelDuration) return TYPE_VALUES.duration;
      if (value instanceof CelTypeValue) return TYPE_VALUES.type;
      return undefined;
    default:
      return undefined;
  }
}

function numericValue(value: unknown): number | bigint | undefined {
  if (typeof value === 'number' || typeof value === 'bigint') return value;
  if (value instanceof CelUint) return value.value;
  return undefined;
}

function numbersEqual(left: number | bigint, right: number | bigint): boolean {
  if (typeof left === typeof right) return left === right;
  // As cel-go: an int or uint meets a double as a double.
  return Number(left) === Number(right);
}

/** CEL equality: numbers compare across int, uint and double; values of different types are unequal. */
export function celEquals(left: unknown, right: unknown): boolean {
  if (left === right) return typeof left !== 'number' || !Number.isNaN(left);
  const leftNumber = numericValue(left);
  if (leftNumber !== undefined) {
    const rightNumber = numericValue(right);
    return rightNumber !== undefined && numbersEqual(leftNumber, rightNumber);
  }
  if (typeof left !== 'object' || typeof right !== 'object' || left === null || right === null) return false;
  if (Array.isArray(left)) {
    if (!Array.isArray(right) || left.length !== right.length) return false;
    for (let index = 0; index < left.length; index++) if (!celEquals(left[index], right[index])) return false;
    return true;
  }
  if (left instanceof Uint8Array) {
    if (!(right instanceof Uint8Array) || left.length !== right.length) return false;
    for (let index = 0; index < left.length; index++) if (left[index] !== right[index]) return false;
    return true;
  }
  if (left instanceof CelTimestamp) return right instanceof CelTimestamp && left.nanos === right.nanos;
  if (left instanceof CelDuration) return right instanceof CelDuration && left.nanos === right.nanos;
  if (left instanceof CelTypeValue) return right instanceof CelTypeValue && left.name === right.name;
  if (isMap(left) && isMap(right)) {
    if (mapSize(left) !== mapSize(right)) return false;
    for (const key of mapKeys(left)) {
      const other = mapGet(right, key);
      if (other === undefined || !celEquals(mapGet(left, key), other)) return false;
    }
    return true;
  }
  return false;
}

/** Whether a value is a map (a {@link CelMap} or a plain object). */
export function isMap(value: unknown): value is CelMap | Record<string, unknown> {
  return value instanceof CelMap || isPlainObject(value);
}

export function mapSize(map: CelMap | Record<string, unknown>): number {
  return map instanceof CelMap ? map.size : Object.keys(map).length;
}

export function mapKeys(map: CelMap | Record<string, unknown>): unknown[] {
  return map instanceof CelMap ? map.keys() : Object.keys(map);
}

/** The value at a key, or undefined when absent. */
export function mapGet(map: CelMap | Record<string, unknown>, key: unknown): unknown {
  if (map instanceof CelMap) return map.get(key);
  if (typeof key !== 'string' || !Object.hasOwn(map, key)) return undefined;
  return map[key];
}

/**
 * Orders two values of the same comparable type; numbers order across int, uint and double.
 * Returns undefined when the values cannot be ordered (different types), and NaN when a NaN is involved.
 */
export function celCompare(left: unknown, right: unknown): number | undefined {
  const leftNumber = numericValue(left);
  if (leftNumber !== undefined) {
    const rightNumber = numericValue(right);
    if (rightNumber === undefined) return undefined;
    if (typeof leftNumber !== typeof rightNumber) {
      // As cel-go: an int or uint meets a double as a double.
      const x = Number(leftNumber);
      const y = Number(rightNumber);
      return x < y ? -1 : x > y ? 1 : x === y ? 0 : Number.NaN;
    }
    if (leftNumber < rightNumber) return -1;
    if (leftNumber > rightNumber) return 1;
    const isNotANumber = (value: number | bigint): boolean =>
      typeof value === 'number' && Number.isNaN(value);
    return isNotANumber(leftNumber) || isNotANumber(rightNumber) ? Number.NaN : 0;
  }
  if (typeof left === 'string') {
    if (typeof right !== 'string') return undefined;
    return left < right ? -1 : left > right ? 1 : 0;
  }
  if (typeof left === 'boolean') {
    if (typeof right !== 'boolean') return undefined;
    return Number(left) - Number(right);
  }
  if (left instanceof Uint8Array) {
    if (!(right instanceof Uint8Array)) return undefined;
    const length = Math.min(left.length, right.length);
    for (let index = 0; index < length; index++) {
      const difference = (left[index] as number) - (right[index] as number);
      if (difference !== 0) return Math.sign(difference);
    }
    return Math.sign(left.length - right.length);
  }
  if (left instanceof CelTimestamp && right instanceof CelTimestamp) {
    return left.nanos < right.nanos ? -1 : left.nanos > right.nanos ? 1 : 0;
  }
  if (left instanceof CelDuration && right instanceof CelDuration) {
    return left.nanos < right.nanos ? -1 : left.nanos > right.nanos ? 1 : 0;
  }
  return undefined;
}

/** The number of Unicode code points in a string (CEL's `size` of a string). */
export function codePointLength(text: string): number {
  let count = text.length;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 0xdc00 && code <= 0xdfff) count--;
  }
  return count;
}
