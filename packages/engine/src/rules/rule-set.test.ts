import { describe, expect, it } from 'vitest';
import { compileRuleSet } from './rule-set.js';
import { paymentActivation, paymentEnvironment } from './test-environment.js';
import { CelError } from './values.js';

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
    expect(ruleSet.fieldCount).toBeGreaterThan(0);
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
