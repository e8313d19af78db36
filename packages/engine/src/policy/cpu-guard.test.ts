import { performance } from 'node:perf_hooks';
import type { PolicyInput } from '@vigil/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compile } from '../rules/compiler.js';
import { createEnvironment, DEFAULT_LIMITS } from '../rules/environment.js';
import { evaluationGuard } from '../rules/evaluation-guard.js';
import { celRuleCompiler } from './cel-rule-compiler.js';
import type { RuleActivation } from './policy-model.js';
import { compilePolicy, PolicyCompileFailure } from './serving-policies.js';
import { evaluatePolicy } from './strategy.js';

const at = new Date(0).toISOString();
const environment = {
  eventFields: { account_id: 'string' as const, tags: 'string_list' as const },
  features: {},
  lists: [],
  models: [],
};

function policyOf(policy: PolicyInput) {
  return compilePolicy(
    celRuleCompiler(),
    { tenantId: 't1', eventType: 'signup', version: 1, policy, createdAt: at, createdBy: 'test' },
    environment,
  );
}

/**
 * Passes the static cost check (it assumes strings of at most 1,024 characters) but runs for tens
 * of milliseconds on 1,000 tags of 4,000 characters, the most an event may carry: each tag is
 * repeated four times, then measured code point by code point.
 */
const pathological = 'event.tags.map(t, t + t + t + t).exists(s, s.size() == 1)';
const bigTags = Array.from(
  { length: 1000 },
  (_, index) => `${'a'.repeat(3996)}${String(index).padStart(4, '0')}`,
);
const activation = (tags: string[]): RuleActivation => ({
  event: { account_id: 'u-1', tags },
  features: {},
  models: {},
});

const rules: PolicyInput['rules'] = [
  { id: 'first', when: "event.account_id == 'u-1'", verdict: 'challenge' },
  { id: 'slow', when: pathological, verdict: 'reject' },
  { id: 'after', when: "event.account_id == 'u-1'", score: 10 },
];

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the CPU guard', () => {
  it('lets the pathological rule through the static cost check, and it evaluates without a budget', () => {
    const policy = policyOf({ on_missing: 'not_hit', rules });
    const estimate = compile(createEnvironment({ event: { tags: 'string_list' } }), pathological);
    expect(estimate.ok && estimate.program.cost.max).toBeLessThan(DEFAULT_LIMITS.costBudget);
    const outcome = evaluatePolicy(policy, activation(['short']), undefined, Number.POSITIVE_INFINITY);
    expect(outcome.cutOff).toBeNull();
    expect(outcome.errors).toEqual([]);
    expect(outcome.rules.map((rule) => rule.id)).toEqual(['first', 'after']);
  });

  it('cuts a rule off inside its loops when the budget is spent, and skips the rules after it', () => {
    const policy = policyOf({ on_missing: 'review', rules });
    const outcome = evaluatePolicy(policy, activation(bigTags), undefined, 1);
    expect(outcome.cutOff).toBe('cpu');
    expect(outcome.errors).toEqual([
      { rule: 'slow', message: 'cpu budget exceeded' },
      { rule: 'after', message: 'cpu budget exceeded' },
    ]);
    // The rule before the cut still counts; on_missing review applies to the ones cut off.
    expect(outcome.rules.map((rule) => rule.id)).toEqual(['first']);
    expect(outcome.verdict).toBe('review');
    expect(outcome.score).toBe(0);
  });

  it('follows on_missing not_hit for rules cut off', () => {
    const outcome = evaluatePolicy(
      policyOf({ on_missing: 'not_hit', rules }),
      activation(bigTags),
      undefined,
      1,
    );
    expect(outcome.verdict).toBe('challenge');
    expect(outcome.errors.map((error) => error.rule)).toEqual(['slow', 'after']);
  });

  it('stops at the deadline when it comes before the budget, and says so', () => {
    const policy = policyOf({ on_missing: 'not_hit', rules });
    const outcome = evaluatePolicy(policy, activation(bigTags), undefined, 1000, performance.now() - 1);
    expect(outcome.cutOff).toBe('deadline');
    expect(outcome.errors.map((error) => error.message)).toEqual([
      'deadline reached before the rule finished',
      'deadline reached before the rule finished',
    ]);
  });

  it('interrupts a comprehension of cheap iterations from inside its loop', () => {
    // A clock that moves 1 ms per read: the read after the first 1,000 units of work starts the
    // budget, the next one, 1,000 iterations later, finds it spent; a last one times the
    // evaluation (`cpuMs`, charged to the tenant's rule CPU share).
    let clock = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => ++clock);
    const scan = policyOf({
      rules: [
        {
          id: 'scan',
          when: "event.tags.filter(t, t.startsWith('b')).size() > 0 || event.tags.exists(t, t == 'x')",
        },
      ],
    });
    const tags = Array.from({ length: 1000 }, (_, index) => `tag-${index}`);
    const outcome = evaluatePolicy(scan, activation(tags), undefined, 0.5);
    expect(outcome.errors).toEqual([{ rule: 'scan', message: 'cpu budget exceeded' }]);
    expect(clock).toBe(3);
    expect(outcome.cpuMs).toBe(2);
    // With time to spare the same rule evaluates.
    expect(evaluatePolicy(scan, activation(tags), undefined, 1000).errors).toEqual([]);
  });

  it('never reads the clock for a cheap policy', () => {
    const cheap = policyOf({
      rules: Array.from({ length: 30 }, (_, index) => ({
        id: `r${index}`,
        when: `event.account_id == 'u-${index}' || size(event.tags) > ${index}`,
      })),
    });
    const now = vi.spyOn(performance, 'now');
    const outcome = evaluatePolicy(cheap, activation(['a', 'b']), undefined, 1);
    expect(outcome.rules.map((rule) => rule.id)).toEqual(['r0', 'r1']);
    expect(now).not.toHaveBeenCalled();
    // A busy one does.
    evaluatePolicy(policyOf({ rules }), activation(bigTags.slice(0, 100)), undefined, 1000);
    expect(now).toHaveBeenCalled();
  });

  it('is disarmed after a policy: an evaluation outside one runs unlimited', () => {
    evaluatePolicy(policyOf({ on_missing: 'review', rules }), activation(bigTags), undefined, 1);
    expect(evaluationGuard.cut).toBeNull();
    const program = compile(createEnvironment({ event: { tags: 'string_list' } }), pathological);
    if (!program.ok) throw new Error('does not compile');
    expect(program.program.evaluate(activation(bigTags.slice(0, 50)))).toBe(false);
  });

  it('refuses statically a nested comprehension whose estimated cost is over the budget', () => {
    expect(() =>
      policyOf({
        rules: [{ id: 'nested', when: "event.tags.exists(a, event.tags.exists(b, a == b + 'x'))" }],
      }),
    ).toThrow(PolicyCompileFailure);
  });
});
