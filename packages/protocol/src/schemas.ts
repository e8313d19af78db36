import { type Static, type TLiteral, type TUnion, Type } from '@sinclair/typebox';

/** A union of string literals whose static type is the union of the strings. */
export function literalUnion<T extends string>(
  values: readonly T[],
  options?: object,
): TUnion<TLiteral<T>[]> {
  return Type.Union(
    values.map((value) => Type.Literal(value)),
    options,
  );
}

/** Verdicts from least to most severe. */
export const verdicts = ['accept', 'challenge', 'review', 'reject'] as const;
export type Verdict = (typeof verdicts)[number];

export const fieldTypes = [
  'string',
  'number',
  'integer',
  'boolean',
  'ip',
  'email',
  'phone',
  'timestamp',
  'enum',
  'string_list',
] as const;
export type FieldType = (typeof fieldTypes)[number];

export const Scope = Type.Union([Type.Literal('decide'), Type.Literal('manage')]);
export type Scope = Static<typeof Scope>;

/** Names of event types, fields, features, lists: safe in URLs, logs and CEL. */
export const Identifier = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' });

export const FieldSpec = Type.Object(
  {
    type: literalUnion(fieldTypes),
    required: Type.Optional(Type.Boolean()),
    values: Type.Optional(Type.Array(Type.String({ maxLength: 256 }), { minItems: 1, maxItems: 1000 })),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);
export type FieldSpec = Static<typeof FieldSpec>;

export const EventTypeSchema = Type.Object(
  {
    fields: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' }), FieldSpec, {
      maxProperties: 200,
    }),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);
export type EventTypeSchema = Static<typeof EventTypeSchema>;

export const EventId = Type.String({ minLength: 1, maxLength: 128 });

/** One event as a customer sends it. `fields` is checked against the event type's schema. */
export const EventInput = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64 }),
    id: EventId,
    timestamp: Type.Optional(Type.String({ format: 'date-time' })),
    fields: Type.Object({}, { additionalProperties: true }),
  },
  { additionalProperties: false },
);
export type EventInput = Static<typeof EventInput>;

export const DecisionRequest = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64 }),
    id: EventId,
    timestamp: Type.Optional(Type.String({ format: 'date-time' })),
    fields: Type.Object({}, { additionalProperties: true }),
    timeout_ms: Type.Optional(
      Type.Integer({ minimum: 5, maximum: 5000, description: 'Deadline in ms; 100 if absent.' }),
    ),
  },
  { additionalProperties: false },
);
export type DecisionRequest = Static<typeof DecisionRequest>;

export const RuleHit = Type.Object({
  id: Type.String(),
  name: Type.String(),
  verdict: Type.Optional(Type.String()),
  score: Type.Optional(Type.Number()),
  reason: Type.Optional(Type.String()),
});

export const RuleError = Type.Object({ rule: Type.String(), message: Type.String() });

export const DecisionResponse = Type.Object({
  decision_id: Type.String(),
  event_id: Type.String(),
  verdict: literalUnion(verdicts),
  score: Type.Number(),
  rules: Type.Array(RuleHit),
  tags: Type.Array(Type.String()),
  policy_version: Type.Union([Type.Integer(), Type.Null()]),
  degraded: Type.Array(Type.String()),
  errors: Type.Array(RuleError),
  latency_ms: Type.Number(),
});
export type DecisionResponse = Static<typeof DecisionResponse>;

export const ErrorResponse = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String(),
          message: Type.String(),
          rule: Type.Optional(Type.String()),
          line: Type.Optional(Type.Integer()),
          column: Type.Optional(Type.Integer()),
        }),
      ),
    ),
  }),
});

/** An item of a batch answer: a decision, or the error that kept this event from one. */
export const BatchItem = Type.Union([
  DecisionResponse,
  Type.Intersect([Type.Object({ event_id: Type.String() }), ErrorResponse]),
]);

export const DecisionBatchRequest = Type.Object(
  {
    events: Type.Array(DecisionRequest, { minItems: 1 }),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 5, maximum: 5000 })),
  },
  { additionalProperties: false },
);

export const EventBatchRequest = Type.Object(
  { events: Type.Array(EventInput, { minItems: 1 }) },
  { additionalProperties: false },
);

export const FeedbackRequest = Type.Object(
  {
    event_id: EventId,
    label: Type.Union([Type.Literal('fraud'), Type.Literal('legit')]),
    source: Type.Optional(Type.String({ maxLength: 128 })),
    note: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export type FeedbackRequest = Static<typeof FeedbackRequest>;

/**
 * A tenant's fail-open answer when a node sheds its decision requests under overload: a normal
 * decision with this verdict, `degraded: ["shed"]`, not logged. Without it, shed requests get 503.
 */
export const OverloadFallback = Type.Object(
  { verdict: literalUnion(verdicts) },
  { additionalProperties: false },
);
export type OverloadFallback = Static<typeof OverloadFallback>;

export const TenantInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    rate_limit: Type.Optional(
      Type.Object(
        {
          rps: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
          burst: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
        },
        { additionalProperties: false },
      ),
    ),
    max_concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    /** `null` (or absent): shed decision requests are answered 503 `overloaded`. */
    overload_fallback: Type.Optional(Type.Union([OverloadFallback, Type.Null()])),
  },
  { additionalProperties: false },
);
export type TenantInput = Static<typeof TenantInput>;

export const TenantPatch = Type.Partial(TenantInput, { additionalProperties: false });
export type TenantPatch = Static<typeof TenantPatch>;

export const KeyInput = Type.Object(
  {
    scopes: Type.Array(Scope, { minItems: 1, uniqueItems: true }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export type KeyInput = Static<typeof KeyInput>;

export const strategies = ['worst', 'first_match', 'score'] as const;
export type Strategy = (typeof strategies)[number];

export const RuleInput = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    when: Type.String({ minLength: 1, maxLength: 8192 }),
    verdict: Type.Optional(literalUnion(verdicts)),
    score: Type.Optional(Type.Number({ minimum: -100, maximum: 100 })),
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 20 })),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export type RuleInput = Static<typeof RuleInput>;

export const PolicyInput = Type.Object(
  {
    strategy: Type.Optional(literalUnion(strategies, { default: 'worst' })),
    thresholds: Type.Optional(
      Type.Object(
        {
          challenge: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
          review: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
          reject: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    on_missing: Type.Optional(literalUnion(['not_hit', 'review'] as const, { default: 'not_hit' })),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    rules: Type.Array(RuleInput, { maxItems: 500 }),
  },
  { additionalProperties: false },
);
export type PolicyInput = Static<typeof PolicyInput>;

export const featureAggregations = [
  'count',
  'sum',
  'distinct',
  'min',
  'max',
  'avg',
  'last',
  'first_seen',
] as const;

/**
 * One `by` item of a feature: a field name, or a function of a field with up to two small whole
 * numbers (`email_domain(email)`, `ip_prefix(ip, 24)`, `asn(ip)`). The engine's `checkFeature`
 * then names unknown functions and wrong arguments precisely (docs/FEATURES.md).
 */
export const FeatureByItem = Type.String({
  maxLength: 100,
  pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}(\\( *[A-Za-z_][A-Za-z0-9_]{0,63} *(, *[0-9]{1,3} *){0,2}\\))?$',
});

/** A feature definition (SPEC §4 `PUT .../features/:name`). */
export const FeatureInput = Type.Object(
  {
    aggregation: literalUnion(featureAggregations),
    field: Type.Optional(Identifier),
    by: Type.Array(FeatureByItem, { minItems: 1, maxItems: 5 }),
    window: Type.String({ pattern: '^[0-9]{1,9}[smhd]$' }),
    event_types: Type.Array(Identifier, { minItems: 1, maxItems: 50 }),
    filter: Type.Optional(Type.String({ minLength: 1, maxLength: 4000 })),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);
export type FeatureInput = Static<typeof FeatureInput>;
