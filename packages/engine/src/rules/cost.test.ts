import { describe, expect, it } from 'vitest';
import { compile } from './compiler.js';
import { createEnvironment } from './environment.js';
import { paymentActivation, paymentEnvironment } from './test-environment.js';
import { CelError } from './values.js';

const environment = paymentEnvironment();

function costOf(text: string): number {
  const result = compile(environment, text);
  if (!result.ok) throw new Error(result.errors.map((error) => error.formatted).join('\n'));
  return result.program.cost.max;
}

describe('cost estimation', () => {
  it('gives simple rules a small cost', () => {
    expect(costOf('event.amount > 100.0')).toBeLessThan(10);
    expect(costOf("event.country in ['FR', 'DE'] && features.tx_count_1h > 3")).toBeLessThan(20);
  });

  it('multiplies a comprehension by the size bound of its range', () => {
    const one = costOf("event.tags.exists(tag, tag == 'vip')");
    expect(one).toBeGreaterThanOrEqual(1000);
    expect(costOf('[1, 2, 3].exists(item, item == 2)')).toBeLessThan(20);
    expect(costOf("event.tags.exists(tag, tag.contains('vip'))")).toBeGreaterThan(one);
  });

  it('charges regular expressions by text and pattern size', () => {
    expect(costOf("event.country.matches('^[A-Z]{2}$')")).toBeGreaterThan(costOf("event.country == 'FR'"));
  });

  it('refuses an expression over the budget with a clear, positioned error', () => {
    const result = compile(environment, "event.tags.exists(a, event.tags.exists(b, a + b == 'xy'))");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.stage).toBe('cost');
    expect(result.errors[0]?.message).toMatch(/^estimated cost \d+ exceeds the budget of 1000000$/);
    expect(result.errors[0]?.column).toBe(12);
  });

  it('takes the budget and bounds from the environment', () => {
    const strict = createEnvironment({ event: { tags: 'string_list' }, limits: { costBudget: 50 } });
    expect(compile(strict, "event.tags.exists(tag, tag == 'vip')").ok).toBe(false);
    const small = createEnvironment({ event: { tags: 'string_list' }, limits: { maxListSize: 10 } });
    const result = compile(small, 'event.tags.exists(a, event.tags.exists(b, a == b))');
    expect(result.ok).toBe(true);
  });

  it('enforces the assumed list bound at runtime, so the estimate holds for any data', () => {
    const small = createEnvironment({ event: { tags: 'string_list' }, limits: { maxListSize: 10 } });
    const result = compile(small, "event.tags.exists(tag, tag == 'vip')");
    if (!result.ok) throw new Error('expected to compile');
    const tags = Array.from({ length: 11 }, (_, index) => `tag${index}`);
    const value = result.program.evaluate(paymentActivation({ tags }));
    expect(value).toBeInstanceOf(CelError);
    expect((value as CelError).message).toContain('larger than the bound of 10');
  });
});
