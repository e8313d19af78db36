import type { FeatureInput } from '@vigil/protocol';
import type { EventTypeRecord } from '../ports/config-store.js';
import type { CounterSpec } from '../ports/counter-store.js';
import { type CompiledExpression, compile, createEnvironment } from '../rules/index.js';
import {
  type ByTerm,
  canonicalByTerm,
  checkByTermType,
  type KeyExtractor,
  keyExtractor,
  needsIpData,
  parseByTerm,
} from './feature-keys.js';

/** A stored feature definition. A new version starts with empty state (then backfilled). */
export interface FeatureRecord {
  tenantId: string;
  name: string;
  definition: FeatureInput;
  version: number;
  updatedAt: string;
}

/** One problem of a feature definition, with the JSON path it concerns. */
export interface FeatureIssue {
  path: string;
  message: string;
}

/** What a feature's value is to rules (`features.<name>`). */
export type FeatureValueType = 'int' | 'double' | 'string';

/** Field types whose values are text: `last` of one of them is a string. */
const stringFieldTypes: ReadonlySet<string> = new Set(['string', 'ip', 'email', 'phone', 'enum']);

/**
 * What a feature's value is to rules: counts are `int`, `last` of a string-like field (string, ip,
 * email, phone, enum) is `string`, everything else `double`. The field's type is looked up in the
 * first listed event type that has it (a valid definition's event types agree on it).
 */
export function featureValueType(
  definition: Pick<FeatureInput, 'aggregation' | 'field' | 'event_types'>,
  eventTypeOf: (name: string) => EventTypeRecord | undefined,
): FeatureValueType {
  const { aggregation, field } = definition;
  if (aggregation === 'count' || aggregation === 'distinct') return 'int';
  if (aggregation !== 'last' || field === undefined) return 'double';
  for (const name of definition.event_types) {
    const type = eventTypeOf(name)?.schema.fields[field]?.type;
    if (type !== undefined) return stringFieldTypes.has(type) ? 'string' : 'double';
  }
  return 'double';
}

const minimumWindowMs = 30_000;
const maximumWindowMs = 90 * 86_400_000;
const unitMs = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30s` ... `90d` in ms, or undefined when malformed or out of range. */
export function parseWindow(text: string): number | undefined {
  const match = /^([0-9]{1,9})([smhd])$/.exec(text);
  if (match === null) return undefined;
  const ms = Number(match[1]) * unitMs[match[2] as keyof typeof unitMs];
  return ms >= minimumWindowMs && ms <= maximumWindowMs ? ms : undefined;
}

/** Aggregations over a field's value; `count` and `first_seen` concern the `by` key only. */
const needsField = new Set(['sum', 'min', 'max', 'avg', 'distinct', 'last']);
const numericAggregations = new Set(['sum', 'min', 'max', 'avg']);
const numericTypes = new Set(['number', 'integer']);

/**
 * A feature ready for one event type: how to build its key and value from an event and whether
 * the event counts.
 */
export interface FeatureProgram {
  readonly name: string;
  readonly counter: CounterSpec;
  /** The definition's `by` items as written. */
  readonly by: readonly string[];
  /** Builds the group key from an event's fields; compiled once per program. */
  readonly key: KeyExtractor;
  /** Whether the key needs the IP database (`asn(...)`): without it the feature has no value. */
  readonly usesIpData: boolean;
  readonly field: string | undefined;
  readonly filter: CompiledExpression | undefined;
}

/** The parsed `by` items of a definition, or the problems of those that do not parse. */
function parseBy(by: readonly string[]): { terms: (ByTerm | undefined)[]; issues: FeatureIssue[] } {
  const issues: FeatureIssue[] = [];
  const terms = by.map((text, index) => {
    const parsed = parseByTerm(text);
    if ('error' in parsed) {
      issues.push({ path: `by.${index}`, message: parsed.error });
      return undefined;
    }
    return parsed.term;
  });
  return { terms, issues };
}

/** Whether a feature's key needs the IP database (it has no value until the database has loaded). */
export function featureUsesIpData(definition: Pick<FeatureInput, 'by'>): boolean {
  return definition.by.some((text) => {
    const parsed = parseByTerm(text);
    return 'term' in parsed && needsIpData(parsed.term);
  });
}

/**
 * Checks a definition against the tenant's event types: the field is required where the
 * aggregation needs it (numeric for sum/min/max/avg; for last numeric or string-like, the same
 * kind in every event type), every `by` item parses (a field or `email_domain(f)`,
 * `ip_prefix(f, bits[, bits])`, `asn(f)`), its field exists in every listed
 * event type with a type the item accepts, the field exists in every listed event type, the
 * window is 30s..90d, the filter compiles to bool in each event type. Returns every problem.
 */
export function checkFeature(
  definition: FeatureInput,
  eventTypeOf: (name: string) => EventTypeRecord | undefined,
): FeatureIssue[] {
  const issues: FeatureIssue[] = [];
  const { aggregation, field } = definition;
  if (parseWindow(definition.window) === undefined)
    issues.push({ path: 'window', message: "must be a whole number of s, m, h or d from '30s' to '90d'" });
  if (needsField.has(aggregation) && field === undefined)
    issues.push({ path: 'field', message: `is required for '${aggregation}'` });
  if (!needsField.has(aggregation) && field !== undefined)
    issues.push({ path: 'field', message: `is not used by '${aggregation}'` });
  const by = parseBy(definition.by);
  issues.push(...by.issues);
  /** For `last`: whether the field is text, from the first event type that has a usable one. */
  let lastIsText: boolean | undefined;
  const parsedTerms = by.terms.filter((term) => term !== undefined);
  if (new Set(parsedTerms.map(canonicalByTerm)).size !== parsedTerms.length)
    issues.push({ path: 'by', message: 'names the same item twice' });
  if (new Set(definition.event_types).size !== definition.event_types.length)
    issues.push({ path: 'event_types', message: 'names an event type twice' });
  for (const typeName of definition.event_types) {
    const eventType = eventTypeOf(typeName);
    if (eventType === undefined) {
      issues.push({ path: 'event_types', message: `'${typeName}' is not a defined event type` });
      continue;
    }
    const fields = eventType.schema.fields;
    for (const [index, term] of by.terms.entries()) {
      if (term === undefined) continue;
      const spec = fields[term.field];
      if (spec === undefined) {
        issues.push({ path: `by.${index}`, message: `'${term.field}' is not a field of '${typeName}'` });
        continue;
      }
      const mismatch = checkByTermType(term, spec.type);
      if (mismatch !== undefined) issues.push({ path: `by.${index}`, message: mismatch });
    }
    if (field !== undefined) {
      const spec = fields[field];
      if (spec === undefined)
        issues.push({ path: 'field', message: `'${field}' is not a field of '${typeName}'` });
      else if (numericAggregations.has(aggregation) && !numericTypes.has(spec.type))
        issues.push({ path: 'field', message: `'${aggregation}' needs a number or integer field` });
      else if (spec.type === 'string_list')
        issues.push({ path: 'field', message: `'${field}' is a list; aggregate a single value` });
      else if (aggregation === 'last') {
        const text = stringFieldTypes.has(spec.type);
        if (!text && !numericTypes.has(spec.type))
          issues.push({
            path: 'field',
            message: `'last' needs a number, integer, string, ip, email, phone or enum field; '${field}' is ${spec.type}`,
          });
        else if (lastIsText === undefined) lastIsText = text;
        else if (lastIsText !== text)
          issues.push({
            path: 'field',
            message: `'${field}' is ${spec.type} in '${typeName}' but ${lastIsText ? 'text' : 'a number'} in an earlier event type; 'last' needs one kind`,
          });
      }
    }
    if (definition.filter !== undefined) {
      const compiled = compileFilter(definition.filter, eventType);
      if (!compiled.ok) {
        for (const error of compiled.errors)
          issues.push({ path: 'filter', message: `in '${typeName}': ${error.message}` });
      }
    }
  }
  return issues;
}

function compileFilter(text: string, eventType: EventTypeRecord) {
  const event: Record<string, EventTypeRecord['schema']['fields'][string]['type']> = {};
  for (const [name, spec] of Object.entries(eventType.schema.fields)) event[name] = spec.type;
  return compile(createEnvironment({ event }), text, { expectBoolean: true });
}

/** The identity of a feature version's state; a new version starts empty. */
export function counterIdOf(record: Pick<FeatureRecord, 'tenantId' | 'name' | 'version'>): string {
  return `${record.tenantId}\u0000${record.name}\u0000${record.version}`;
}

/**
 * The program of a feature for one of its event types, or undefined when the definition no longer
 * fits the event type (a field was removed or retyped since it was saved).
 */
export function featureProgram(
  record: FeatureRecord,
  eventType: EventTypeRecord,
): FeatureProgram | undefined {
  const definition = record.definition;
  if (checkFeature({ ...definition, event_types: [eventType.name] }, () => eventType).length > 0)
    return undefined;
  let filter: CompiledExpression | undefined;
  if (definition.filter !== undefined) {
    const compiled = compileFilter(definition.filter, eventType);
    if (!compiled.ok) return undefined;
    filter = compiled.program;
  }
  const terms = parseBy(definition.by).terms as ByTerm[];
  return {
    name: record.name,
    counter: {
      id: counterIdOf(record),
      aggregation: definition.aggregation,
      windowMs: parseWindow(definition.window) as number,
      ...(featureValueType(definition, () => eventType) === 'string' && { valueType: 'string' as const }),
    },
    by: definition.by,
    key: keyExtractor(terms),
    usesIpData: terms.some(needsIpData),
    field: definition.field,
    filter,
  };
}
