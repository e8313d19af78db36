import { isIP } from 'node:net';
import type { ErrorDetail, EventTypeSchema, FieldSpec, FieldType } from '@vigil/protocol';

/** Longest string accepted in any field, and most items in a `string_list`. */
export const maxStringLength = 4096;
export const maxListItems = 1000;

/** Checks a value of one field; returns a message, or undefined when the value fits. */
type FieldCheck = (value: unknown) => string | undefined;

const emailPattern = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/;
const phonePattern = /^\+[1-9][0-9]{6,14}$/;
// RFC 3339 with a mandatory zone; Date.parse alone accepts too much.
const timestampPattern = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

const isString = (value: unknown): value is string => typeof value === 'string';

function stringCheck(value: unknown): string | undefined {
  if (!isString(value)) return 'must be a string';
  if (value.length > maxStringLength) return `must be at most ${maxStringLength} characters`;
  return undefined;
}

const checks: Record<Exclude<FieldType, 'enum'>, FieldCheck> = {
  string: stringCheck,
  number: (value) => (typeof value === 'number' && Number.isFinite(value) ? undefined : 'must be a number'),
  integer: (value) => (Number.isSafeInteger(value) ? undefined : 'must be an integer'),
  boolean: (value) => (typeof value === 'boolean' ? undefined : 'must be a boolean'),
  ip: (value) => (isString(value) && isIP(value) !== 0 ? undefined : 'must be an IPv4 or IPv6 address'),
  email: (value) =>
    isString(value) && value.length <= 254 && emailPattern.test(value)
      ? undefined
      : 'must be an email address',
  phone: (value) =>
    isString(value) && phonePattern.test(value)
      ? undefined
      : 'must be a phone number in E.164 form (+14155550123)',
  timestamp: (value) =>
    isString(value) && timestampPattern.test(value) && !Number.isNaN(Date.parse(value))
      ? undefined
      : 'must be an RFC 3339 timestamp with a time zone',
  string_list: (value) => {
    if (!Array.isArray(value)) return 'must be a list of strings';
    if (value.length > maxListItems) return `must have at most ${maxListItems} items`;
    for (const item of value) if (stringCheck(item) !== undefined) return 'must be a list of strings';
    return undefined;
  },
};

function checkFor(spec: FieldSpec): FieldCheck {
  if (spec.type !== 'enum') return checks[spec.type];
  const allowed = new Set(spec.values ?? []);
  const message = `must be one of ${[...allowed].join(', ')}`;
  return (value) => (isString(value) && allowed.has(value) ? undefined : message);
}

/** Validates an event's `fields` against its type and lists every problem; an empty list means valid. */
export type EventValidator = (fields: Record<string, unknown>) => ErrorDetail[];

/**
 * Compiles an event type's schema into a validator built from closures (no code generation, so
 * field names from tenants never reach `Function`). Unknown fields are refused: a typo in a field
 * name should fail loudly at integration time rather than silently leave a rule without data.
 */
export function compileEventValidator(schema: EventTypeSchema): EventValidator {
  const entries = Object.entries(schema.fields).map(([name, spec]) => ({
    name,
    path: `fields.${name}`,
    required: spec.required === true,
    check: checkFor(spec),
  }));
  const known = new Set(entries.map((entry) => entry.name));
  return (fields) => {
    const errors: ErrorDetail[] = [];
    for (const entry of entries) {
      const value = fields[entry.name];
      if (value === undefined || value === null) {
        if (entry.required) errors.push({ path: entry.path, message: 'is required' });
        continue;
      }
      const message = entry.check(value);
      if (message !== undefined) errors.push({ path: entry.path, message });
    }
    for (const name in fields) {
      if (!known.has(name)) errors.push({ path: `fields.${name}`, message: 'is not in the event type' });
    }
    return errors;
  };
}

/** Field types whose values name an entity (an account, an IP...) that decisions can be searched by. */
export const entityFieldTypes: ReadonlySet<FieldType> = new Set(['string', 'ip', 'email', 'phone']);
