import { describe, expect, it } from 'vitest';
import { check } from './checker.js';
import { compile } from './compiler.js';
import { estimateCost } from './cost.js';
import { createEnvironment } from './environment.js';
import { evaluationGuard } from './evaluation-guard.js';
import { FieldSlots } from './field-slots.js';
import { parse } from './parser.js';
import { compileRuleSet } from './rule-set.js';
import { compileTyped } from './typed-compiler.js';
import { CelError } from './values.js';

/*
 * The typed closures of rule sets must give exactly what the general compiler gives: the same
 * booleans, and an error wherever it gives one, with the same message. Every expression below is
 * run both ways on every activation, including absent fields, values of the wrong type, bigints,
 * ints beyond 2^53, overflow, division by zero and strings with surrogates.
 */

const environment = createEnvironment({
  event: {
    amount: 'number',
    count: 'integer',
    other: 'integer',
    country: 'string',
    bin_country: 'string',
    email: 'string',
    verified: 'boolean',
    tags: 'string_list',
    optional: 'string',
    created_at: 'timestamp',
  },
  features: { n: 'int', sum: 'double' },
  models: ['score'],
  lists: ['blocked'],
});

const expressions = [
  // Comparisons: constants on either side, fields on both, int with double.
  'event.amount >= 100.0',
  'event.amount < 5.0',
  '100.0 <= event.amount',
  'event.amount == 120.5',
  'event.amount != 120.5',
  'event.count < 7',
  'event.count >= 2 && event.count <= 3',
  '7 > event.count',
  'event.count == 2',
  'event.count != 2',
  'event.count < 2.5',
  'event.count > event.other',
  'event.count == event.other',
  'event.amount > double(event.count)',
  'event.amount > features.sum',
  'features.sum <= event.amount',
  'event.count < 9223372036854775807',
  'event.count > -9223372036854775808',
  'event.country == event.bin_country',
  "event.country != 'FR'",
  "'FR' == event.country",
  'event.verified == true',
  'event.verified != event.verified',
  // Arithmetic: ints on numbers while exact, else bigints; overflow and division by zero.
  'event.count + event.other > 10',
  'event.count - event.other < 0',
  'event.count * event.other >= 4',
  'event.count * 4611686018427387904 > 0',
  'event.count * 1000000000000 * 1000000000 > 0',
  'event.count / event.other >= 1',
  'event.count / event.other == 0',
  'event.count % event.other == 0',
  'event.count % 100 == 0',
  '-event.count < 0',
  '-event.count == 0',
  'features.n * 2 + event.count * 3 > 30',
  'features.n / event.count >= 5 || features.n * 2 + event.count * 3 > 30',
  'features.n / event.count >= 5 && event.count > 100',
  'event.amount + features.sum > 10000.0',
  'event.amount - features.sum < 0.0',
  'event.amount > 4.0 * (features.sum / double(features.n))',
  'event.amount / 0.0 > 1.0',
  '-event.amount < 0.0',
  // Conversions.
  'double(int(event.amount)) == event.amount',
  'int(event.amount) % 100 == 0',
  'int(event.amount * 1e300) > 0',
  'int(event.amount) == event.count',
  'double(event.count) / 3.0 > 0.5',
  'int(double(event.count)) == event.count',
  // Strings.
  "event.email.endsWith('@example.com') || event.email.endsWith('@test.org')",
  "event.email.startsWith('al') && event.email.contains('+')",
  "event.email.endsWith('.org') || event.count / 0 > 1 || event.email.startsWith('al')",
  "event.count / 0 > 1 || event.email.endsWith('.org') || event.email.startsWith('zz')",
  "event.email.contains('x') || event.email.contains('+') || size(event.email) == 0",
  "event.email.startsWith('zz') || event.country.startsWith('F') || event.email.endsWith('.com')",
  'event.email.contains(event.country)',
  'event.email.startsWith(event.country)',
  'size(event.email) == 0',
  'size(event.email) < 8',
  // Decided from the length alone, or only by counting code points (generated functions).
  'size(event.email) == 8',
  'size(event.email) != 8',
  'size(event.email) == 1',
  'size(event.email) <= 8',
  'size(event.email) > 7',
  '5 > size(event.email)',
  '1 == size(event.email)',
  'event.email.size() >= 3',
  "size(event.email + 'x') > 4",
  // Lists and membership.
  "event.country in ['NG', 'GH', 'FR']",
  "event.country in ['KP'] || event.bin_country in ['KP', 'IR']",
  'event.count in [1, 2, 3]',
  'event.verified in [true]',
  "'vip' in event.tags",
  'size(event.tags) >= 2',
  "event.tags.exists(t, t in ['vip', 'NG'])",
  'event.tags.exists(t, t == event.country)',
  "event.tags.all(t, t != '')",
  'event.tags.exists(t, size(t) > 3) && !event.tags.exists(t, t == event.bin_country)',
  "event.tags.exists(t, ['a', 'web'].exists(u, u == t))",
  "event.tags.exists(t, [t + 'x'].exists(u, u == 'webx'))",
  "event.tags.exists(t, in_list('blocked', t))",
  // has(), !, ternaries, &&/|| with errors on either side.
  'has(event.optional) && event.optional != event.country',
  '!has(event.optional) && event.amount > 10.0',
  '!event.verified && event.amount > 300.0',
  "event.amount > (event.country == 'FR' ? 100.0 : 4000.0)",
  "(event.country == 'FR' ? event.count : event.other) > 1",
  'event.verified ? event.count > 1 : event.other > 1',
  'event.count / 0 > 1 || event.verified',
  'event.verified || event.count / 0 > 1',
  'event.count / 0 > 1 && event.verified',
  'event.verified && event.count / 0 > 1',
  'event.count / 0 > 1 || event.other / 0 > 1 || event.amount > 0.0',
  'event.count / 0 > 1 || event.other % 0 > 1',
  "(event.country == 'US' && event.email != 'x') || (event.country in ['FR', 'DE'] && event.email != 'y')",
  'true && event.verified',
  'false || event.count > 1',
  'false && event.count / 0 > 1',
  '1 / 0 > 1 || event.verified',
  // Models, timestamps and functions left to the general compiler.
  'models.score > 0.5',
  "event.created_at < timestamp('2030-01-01T00:00:00Z') && event.count > 1",
  "in_list('blocked', event.email) || event.amount > 1000.0",
];

const base = {
  amount: 120.5,
  count: 2,
  other: 3,
  country: 'FR',
  bin_country: 'FR',
  email: 'al+1@example.com',
  verified: true,
  tags: ['web', 'vip', 'FR'],
  created_at: '2024-03-10T12:00:00Z',
};

const eventVariants: Record<string, unknown>[] = [
  {},
  { amount: 10000, count: 0, other: 0 },
  { amount: 4.99, verified: false, optional: 'DE', country: 'DE', bin_country: 'NG' },
  { amount: 500, count: 500, other: 7, optional: 'FR' },
  { amount: 1e20, count: 9007199254740991, other: 9007199254740991 },
  { count: -9007199254740991, other: -3 },
  { count: -7, other: 2 },
  { count: 3n, other: 9223372036854775807n },
  { count: -9223372036854775808n, other: -1n },
  { count: 2.5 },
  { count: '2' },
  { amount: '120.5', verified: 'yes' },
  { amount: 7n },
  { amount: Number.NaN },
  { amount: -0 },
  { country: 3, email: 42 },
  { email: '' },
  { email: 'ab\uD83D\uDE00cdefg' },
  { email: '\uDC00\uDC00\uDC00' },
  { email: 'short' },
  { email: 'a' },
  { email: '\uD83D\uDE00' },
  { email: 'abcdef\uD83D\uDE00' },
  { tags: [] },
  { tags: 'web' },
  { tags: ['FR', 'FRx'] },
];

interface Activation {
  event: Record<string, unknown>;
  features: Record<string, unknown>;
  models: Record<string, number>;
}

function activations(): Activation[] {
  const result: Activation[] = [];
  for (const variant of eventVariants) {
    const event: Record<string, unknown> = { ...base, ...variant };
    result.push({ event, features: { n: 12, sum: 480.25 }, models: { score: 0.7 } });
  }
  const withoutFields: Record<string, unknown> = { ...base };
  for (const name of ['amount', 'count', 'country', 'email', 'verified', 'tags']) delete withoutFields[name];
  result.push({ event: withoutFields, features: {}, models: {} });
  result.push({ event: { ...base }, features: { n: 0, sum: 0 }, models: { score: 0.1 } });
  result.push({ event: { ...base, count: 5 }, features: { n: 9007199254740991, sum: -1.5 }, models: {} });
  return result;
}

/** A comparable form of a result: the value, or the error's message. */
function outcome(value: unknown): unknown {
  return value instanceof CelError ? { error: value.message } : value;
}

const services = { inList: (_list: string, value: unknown) => value === 'vip' };

describe('typed closures of rule sets', () => {
  // Both fast paths of rule sets: typed closures alone, and generated functions (`generated-rules.ts`)
  // for the rules they cover, typed closures for the rest.
  it.each([
    ['typed closures', false],
    ['generated functions', true],
  ])(
    '%s give what the general compiler gives, errors included, on every expression and activation',
    (_name, generate) => {
      const compiled = compileRuleSet(
        environment,
        expressions.map((when, index) => ({ id: String(index), when })),
        { generate },
      );
      if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors.slice(0, 3)));
      const { ruleSet } = compiled;
      const general = expressions.map((text) => {
        const result = compile(environment, text, { expectBoolean: true });
        if (!result.ok) throw new Error(`${text}: ${JSON.stringify(result.errors)}`);
        return result.program;
      });
      const differences: string[] = [];
      let compared = 0;
      for (const activation of activations()) {
        ruleSet.prepare(activation);
        for (let index = 0; index < expressions.length; index++) {
          const typed = outcome(ruleSet.evaluateRule(index, activation, services as never));
          const expected = outcome(general[index]?.evaluate(activation, services as never));
          compared++;
          if (JSON.stringify(typed) !== JSON.stringify(expected)) {
            differences.push(
              `${expressions[index]} on ${JSON.stringify(activation.event, (_key, value) =>
                typeof value === 'bigint' ? `${value}n` : value,
              )}: typed ${JSON.stringify(typed)}, general ${JSON.stringify(expected)}`,
            );
          }
        }
      }
      expect(differences).toEqual([]);
      expect(compared).toBe(expressions.length * activations().length);
    },
  );

  it('refuses a list element of the wrong type, as the rule-set path always did', () => {
    // The general compiler reads a comprehension variable unchecked; rule sets check it against the
    // element type of the list field (a string_list element that is not a string is an error).
    const compiled = compileRuleSet(environment, [
      { id: 'in', when: "event.tags.exists(t, t in ['vip'])" },
      { id: 'equal', when: 'event.tags.exists(t, t == event.country)' },
      { id: 'hit', when: "event.tags.exists(t, t == 'x')" },
    ]);
    if (!compiled.ok) throw new Error('compile');
    const activation: Activation = { event: { ...base, tags: ['NG', 7, 'x'] }, features: {}, models: {} };
    compiled.ruleSet.prepare(activation);
    expect(outcome(compiled.ruleSet.evaluateRule(0, activation))).toEqual({
      error: "element 't' is not a string",
    });
    expect(outcome(compiled.ruleSet.evaluateRule(1, activation))).toEqual({
      error: "element 't' is not a string",
    });
    expect(compiled.ruleSet.evaluateRule(2, activation)).toBe(true);
  });

  it('compiles the common rule shapes itself, and leaves the rest to the general compiler', () => {
    const covered = (text: string): boolean => {
      const parsed = parse(text, environment.limits.parse);
      const checked = check(parsed, environment);
      expect(checked.errors).toEqual([]);
      let fallbacks = 0;
      const typed = compileTyped(parsed.expr, {
        environment,
        checked,
        fieldSlots: new FieldSlots(),
        rangeSizes: estimateCost(parsed.expr, checked, environment).rangeSizes,
        fallback: () => {
          fallbacks++;
          return () => true;
        },
      });
      return typed !== undefined && fallbacks === 0;
    };
    expect(covered("event.amount > 100.0 && event.country in ['FR'] || !event.verified")).toBe(true);
    expect(covered('features.n / event.count >= 5 || features.n * 2 + event.count * 3 > 30')).toBe(true);
    expect(covered('double(int(event.amount)) == event.amount && int(event.amount) % 100 == 0')).toBe(true);
    expect(covered("size(event.tags) >= 3 && !event.tags.exists(c, c == event.country || c in ['KP'])")).toBe(
      true,
    );
    expect(covered("has(event.optional) && event.email.endsWith('@x.com')")).toBe(true);
    expect(covered("in_list('blocked', event.email)")).toBe(false);
    expect(covered('models.score > 0.5')).toBe(true);
  });

  it.each([
    ['typed closures', false],
    ['generated functions', true],
  ])('%s stop a long scan when the CPU guard trips', (_name, generate) => {
    const compiled = compileRuleSet(
      environment,
      [
        { id: 'scan', when: "event.tags.exists(t, t == 'never')" },
        { id: 'contains', when: "event.email.contains('never')" },
      ],
      { generate },
    );
    if (!compiled.ok) throw new Error('compile');
    const activation: Activation = {
      event: {
        ...base,
        tags: Array.from({ length: 500 }, (_, index) => `t${index}`),
        email: 'x'.repeat(1000),
      },
      features: {},
      models: {},
    };
    compiled.ruleSet.prepare(activation);
    evaluationGuard.arm(0, Number.POSITIVE_INFINITY);
    evaluationGuard.check();
    try {
      // The budget is spent: the first clock read after the credit runs out cuts the rule off.
      const start = performance.now();
      while (performance.now() <= start) {
        // wait for the clock to move past the cut-off
      }
      evaluationGuard.credit = 1;
      expect(compiled.ruleSet.evaluateRule(0, activation)).toBe(evaluationGuard.error);
      evaluationGuard.credit = 1;
      expect(compiled.ruleSet.evaluateRule(1, activation)).toBe(evaluationGuard.error);
    } finally {
      evaluationGuard.disarm();
    }
    expect(compiled.ruleSet.evaluateRule(0, activation)).toBe(false);
  });
});
