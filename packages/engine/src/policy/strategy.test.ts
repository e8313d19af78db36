import type { RuleInput } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import type { CompiledPolicy, RuleFailure } from './policy-model.js';
import { canaryBucket, evaluatePolicy } from './strategy.js';

/** A rule whose outcome is fixed, so the strategy alone is under test. */
interface FixedRule {
  input: RuleInput;
  evaluate: () => boolean | RuleFailure;
}

function rule(input: Partial<RuleInput> & { id: string }, outcome: boolean | RuleFailure): FixedRule {
  return { input: { when: 'fixed', ...input }, evaluate: () => outcome };
}

function compiled(rules: FixedRule[]): CompiledPolicy['rules'] {
  return {
    inputs: rules.map((fixed) => fixed.input),
    prepare() {},
    evaluate: (index) => (rules[index] as FixedRule).evaluate(),
  };
}

const failure: RuleFailure = { failure: true, message: 'division by zero', missing: false };
const activation = { event: {}, features: {}, models: {} };

function policy(
  strategy: CompiledPolicy['strategy'],
  rules: FixedRule[],
  extra: Partial<CompiledPolicy> = {},
) {
  return evaluatePolicy(
    { version: 1, strategy, thresholds: {}, onMissing: 'not_hit', rules: compiled(rules), ...extra },
    activation,
  );
}

describe('evaluatePolicy', () => {
  it('worst: the most severe hit verdict; no hit means accept', () => {
    const rules = [
      rule({ id: 'a', verdict: 'review', tags: ['x'] }, true),
      rule({ id: 'b', verdict: 'reject', tags: ['x', 'y'], reason: 'blocked' }, true),
      rule({ id: 'c', verdict: 'challenge' }, true),
      rule({ id: 'd', verdict: 'reject' }, false),
    ];
    const outcome = policy('worst', rules);
    expect(outcome.verdict).toBe('reject');
    expect(outcome.rules.map((hit) => hit.id)).toEqual(['a', 'b', 'c']);
    expect(outcome.rules[1]).toEqual({ id: 'b', name: 'b', verdict: 'reject', reason: 'blocked' });
    expect(outcome.tags).toEqual(['x', 'y']);
    expect(policy('worst', [rule({ id: 'n', verdict: 'reject' }, false)]).verdict).toBe('accept');
  });

  it('first_match: the first hit decides and later rules are not evaluated', () => {
    let evaluated = false;
    const later: FixedRule = {
      input: { id: 'later', when: 'x', verdict: 'reject' },
      evaluate: () => {
        evaluated = true;
        return true;
      },
    };
    const outcome = policy('first_match', [
      rule({ id: 'miss', verdict: 'reject' }, false),
      rule({ id: 'hit', verdict: 'challenge' }, true),
      later,
    ]);
    expect(outcome.verdict).toBe('challenge');
    expect(outcome.rules.map((hit) => hit.id)).toEqual(['hit']);
    expect(evaluated).toBe(false);
  });

  it('score: sums hit scores clamped to 0..100, maps thresholds, explicit verdicts on top', () => {
    const thresholds = { review: 40, reject: 80 };
    const scored = (scores: number[], verdict?: 'challenge' | 'reject') =>
      policy(
        'score',
        scores.map((score, index) =>
          rule({ id: `r${index}`, score, ...(index === 0 && verdict && { verdict }) }, true),
        ),
        { thresholds },
      );
    expect(scored([30]).verdict).toBe('accept');
    expect(scored([30, 15])).toMatchObject({ verdict: 'review', score: 45 });
    expect(scored([70, 70])).toMatchObject({ verdict: 'reject', score: 100 });
    expect(scored([-50, 10]).score).toBe(0);
    expect(scored([10], 'reject').verdict).toBe('reject');
  });

  it('reports failing rules as errors; on_missing decides what follows', () => {
    const rules = [rule({ id: 'broken', verdict: 'reject' }, failure)];
    expect(policy('worst', rules)).toMatchObject({
      verdict: 'accept',
      errors: [{ rule: 'broken', message: 'division by zero' }],
    });
    expect(policy('worst', rules, { onMissing: 'review' }).verdict).toBe('review');
  });
});

describe('canaryBucket', () => {
  it('is stable per id and spreads ids over 0..99', () => {
    expect(canaryBucket('evt-1')).toBe(canaryBucket('evt-1'));
    const buckets = Array.from({ length: 10_000 }, (_, index) => canaryBucket(`evt-${index}`));
    expect(Math.min(...buckets)).toBe(0);
    expect(Math.max(...buckets)).toBe(99);
    const underTen = buckets.filter((bucket) => bucket < 10).length;
    expect(underTen).toBeGreaterThan(800);
    expect(underTen).toBeLessThan(1200);
  });
});
