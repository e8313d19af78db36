import { toTimestamp } from './time.js';
import type { CelType } from './types.js';
import type { CelError } from './values.js';

/**
 * How a host value of a declared type is read (see {@link readHostValue}). `IntRaw` leaves an int
 * as the host gave it (number or bigint), for comparisons that need no bigint. Plain numbers, not
 * an enum, so the switch in {@link readHostValue} compiles to a jump table (see `slot-test.ts`).
 */
export const HostKind = {
  String: 0,
  Bool: 1,
  Double: 2,
  Int: 3,
  IntRaw: 4,
  Timestamp: 5,
  List: 6,
  Object: 7,
  Any: 8,
} as const;

export type HostKind = (typeof HostKind)[keyof typeof HostKind];

/** How values of a declared type are read. */
export function hostKind(type: CelType): HostKind {
  switch (type.kind) {
    case 'string':
      return HostKind.String;
    case 'bool':
      return HostKind.Bool;
    case 'double':
      return HostKind.Double;
    case 'int':
      return HostKind.Int;
    case 'timestamp':
      return HostKind.Timestamp;
    case 'list':
      return HostKind.List;
    case 'object':
    case 'map':
      return HostKind.Object;
    default:
      return HostKind.Any;
  }
}

/**
 * Checks the shape of a host value of a declared type (so implementations can trust it) and
 * converts it to the runtime representation. Small and monomorphic, so V8 inlines it.
 */
export function readHostValue(kind: HostKind, value: unknown, wrongType: CelError): unknown {
  switch (kind) {
    case 0: // String
      return typeof value === 'string' ? value : wrongType;
    case 1: // Bool
      return typeof value === 'boolean' ? value : wrongType;
    case 2: // Double
      return typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : wrongType;
    case 3: // Int
      return typeof value === 'bigint'
        ? value
        : typeof value === 'number' && Number.isSafeInteger(value)
          ? BigInt(value)
          : wrongType;
    case 4: // IntRaw
      return typeof value === 'number' || typeof value === 'bigint' ? value : wrongType;
    case 5: // Timestamp
      return toTimestamp(value);
    case 6: // List
      return Array.isArray(value) ? value : wrongType;
    case 7: // Object
      return typeof value === 'object' && value !== null ? value : wrongType;
    default:
      return value;
  }
}
