import { describe, expect, it } from 'vitest';
import { compile } from './compiler.js';
import { createEnvironment } from './environment.js';
import { evaluationGuard } from './evaluation-guard.js';
import { overload } from './function-registry.js';
import { compileRuleSet, RULE_SET_NOT_STARTED } from './rule-set.js';
import { paymentActivation, paymentEnvironment } from './test-environment.js';
import { BOOL, STRING } from './types.js';
import { CelError } from './values.js';
import { EMPTY_RULE_SERVICES } from './vigil-functions.js';

const environment = paymentEnvironment();

describe('compileRuleSet', () => {
  it('evaluates every rule into a reused results array', () => {
    const result = compileRuleSet(
      environment,
      [
        { id: 'big', when: 'event.amount > 100.0' },
        { id: 'fr', when: "event.country == 'FR' && features.tx_count_1h >= 3" },
        { id: 'tags', when: "event.tags.exists(tag, tag == 'vip')" },
        { id: 'risky', when: 'models.fraud_score > 0.9' },
        { id: 'missing', when: "event.currency in ['BTC'] || has(event.nope_not_here)" },
      ].slice(0, 4),
    );
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const { ruleSet } = result;
    expect(ruleSet.ids).toEqual(['big', 'fr', 'tags', 'risky']);
    const results: (boolean | CelError)[] = [];
    expect(ruleSet.evaluateAll(paymentActivation(), undefined, results)).toEqual([true, true, false, false]);
    expect(
      ruleSet.evaluateAll(paymentActivation({ amount: 5.0, country: 'DE' }), undefined, results),
    ).toEqual([false, false, false, false]);
    const withoutAmount = paymentActivation();
    delete withoutAmount.event.amount;
    ruleSet.prepare(withoutAmount);
    expect(ruleSet.evaluateRule(0, withoutAmount)).toBeInstanceOf(CelError);
    expect(ruleSet.evaluateRule(1, withoutAmount)).toBe(true);
    // Generated rule functions read the fields themselves; typed closures read them from slots.
    expect(ruleSet.fieldCount).toBe(0);
    const typed = compileRuleSet(environment, [{ id: 'big', when: 'event.amount > 100.0' }], {
      generate: false,
    });
    expect(typed.ok && typed.ruleSet.fieldCount).toBe(1);
  });

  it('runs every rule in order, stops after the first hit when asked, and marks rules the guard left out', () => {
    const result = compileRuleSet(environment, [
      { id: 'small', when: 'event.amount < 1.0' },
      { id: 'big', when: 'event.amount > 100.0' },
      { id: 'division-by-zero', when: 'event.latitude / 0.0 > 1.0 && event.quantity / 0 > 1' },
      { id: 'fr', when: "event.country == 'FR'" },
    ]);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const { ruleSet } = result;
    const activation = paymentActivation();
    ruleSet.prepare(activation);
    const results: unknown[] = [];
    expect(ruleSet.runAll(activation, EMPTY_RULE_SERVICES, results, false)).toBe(4);
    expect(results.map((value) => (value instanceof CelError ? 'error' : value))).toEqual([
      false,
      true,
      'error',
      true,
    ]);
    expect(ruleSet.runAll(activation, EMPTY_RULE_SERVICES, results, true)).toBe(2);
    // With the guard tripped, no rule starts.
    evaluationGuard.arm(0, Number.NEGATIVE_INFINITY);
    try {
      evaluationGuard.credit = 0;
      expect(ruleSet.runAll(activation, EMPTY_RULE_SERVICES, results, false)).toBe(4);
    } finally {
      evaluationGuard.disarm();
    }
    expect(results).toEqual([
      RULE_SET_NOT_STARTED,
      RULE_SET_NOT_STARTED,
      RULE_SET_NOT_STARTED,
      RULE_SET_NOT_STARTED,
    ]);
  });

  it('refuses the set with every error of every rule, with rule ids and positions', () => {
    const result = compileRuleSet(environment, [
      { id: 'ok', when: 'event.amount > 1.0' },
      { id: 'typo', when: 'event.amout > 1.0' },
      { id: 'syntax', when: 'event.amount >\n  > 1.0' },
      { id: 'not-bool', when: 'event.amount' },
    ]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((error) => [error.ruleId, error.line, error.column])).toEqual([
      ['typo', 1, 6],
      ['syntax', 2, 3],
      ['not-bool', 1, 1],
    ]);
  });
});

describe('rule set fast paths', () => {
  // The slot tests re-implement the most common conditions; they must agree with the closures.
  const expressions = [
    'event.amount > 100.0',
    'event.amount > 100',
    'event.amount <= 120.5',
    'event.quantity >= 2',
    'event.quantity < 2.5',
    'event.quantity > 9223372036854775806',
    'features.tx_count_1h == 3',
    "event.country == 'FR'",
    "event.country != 'FR'",
    "event.country in ['FR', 'DE']",
    "event.email.endsWith('.COM')",
    "event.email.startsWith('alice')",
    "event.email.contains('@')",
    'event.is_new_device',
    '!event.is_new_device',
    'has(event.email)',
    "event.is_new_device || event.country == 'FR'",
    "event.is_new_device && event.country == 'FR'",
    "event.country == 'DE' || event.amount > 1000.0 || features.tx_count_1h > 2",
    "event.tags.exists(tag, tag == 'web')",
    "event.tags.all(tag, tag.startsWith('w'))",
    'event.amount > features.tx_sum_24h * 0.5',
    'features.tx_count_1h > event.quantity',
    "!(event.country == 'FR' && event.amount > 100.0)",
  ];
  const activations = [
    paymentActivation(),
    paymentActivation({ country: 'DE', amount: 5000.0, is_new_device: true, quantity: 9223372036854775807n }),
    paymentActivation({ email: undefined, tags: ['x', 'web'], quantity: 2.5 }),
    paymentActivation({ country: 7, amount: 'many', is_new_device: 'yes', tags: 'web', quantity: 3n }),
  ];
  for (const activation of activations) {
    for (const [key, value] of Object.entries(activation.event))
      if (value === undefined) delete activation.event[key];
  }

  it('gives the same answers as single compiled expressions', () => {
    const result = compileRuleSet(
      environment,
      expressions.map((when, index) => ({ id: `rule-${index}`, when })),
    );
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    for (const activation of activations) {
      const fast = result.ruleSet.evaluateAll(activation);
      expressions.forEach((expression, index) => {
        const single = compile(environment, expression);
        if (!single.ok) throw new Error(expression);
        const expected = single.program.evaluate(activation);
        const actual = fast[index];
        const describe = (value: unknown): string => (value instanceof CelError ? 'error' : String(value));
        expect(`${expression}: ${describe(actual)}`).toBe(`${expression}: ${describe(expected)}`);
      });
    }
  });
});

describe('rule set robustness', () => {
  it('marks a rule errored when its code throws, and still runs the others', () => {
    const throwing = createEnvironment({
      event: { country: 'string' },
      functions: [
        {
          name: 'explode',
          overloads: [
            overload('explode_string', [STRING], BOOL, () => {
              throw new Error('a bug');
            }),
          ],
        },
      ],
    });
    const result = compileRuleSet(throwing, [
      { id: 'first', when: "event.country == 'FR'" },
      { id: 'bug', when: 'explode(event.country)' },
      { id: 'last', when: "event.country != 'DE'" },
    ]);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const results = result.ruleSet.evaluateAll({ event: { country: 'FR' }, features: {}, models: {} });
    expect(results[0]).toBe(true);
    expect(results[1]).toBeInstanceOf(CelError);
    expect((results[1] as CelError).message).toContain('a bug');
    expect(results[2]).toBe(true);
  });
});

describe('field slots', () => {
  it('reads fields whatever the key order of each event', () => {
    const result = compileRuleSet(environment, [
      { id: 'a', when: "event.country == 'FR' && event.amount > 100.0" },
      { id: 'b', when: 'has(event.email)' },
    ]);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const base = paymentActivation().event;
    const keys = Object.keys(base);
    for (let round = 0; round < 40; round++) {
      // A different key order (and so a different object shape) on most rounds.
      const rotated = [...keys.slice(round % keys.length), ...keys.slice(0, round % keys.length)];
      const event: Record<string, unknown> = {};
      for (const key of rotated) if (!(round % 3 === 0 && key === 'email')) event[key] = base[key];
      const results = result.ruleSet.evaluateAll({ event, features: {}, models: {} });
      expect(results).toEqual([true, round % 3 !== 0]);
    }
  });
});
