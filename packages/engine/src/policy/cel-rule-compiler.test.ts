import { describe, expect, it } from 'vitest';
import type { IpInfo, RuleServices } from '../rules/vigil-functions.js';
import { celRuleCompiler } from './cel-rule-compiler.js';
import type { RuleActivation } from './policy-model.js';
import { compilePolicy } from './serving-policies.js';
import { evaluatePolicy } from './strategy.js';

/** Enrichment as a class with private state, as a host may give it. */
class Enrichment implements RuleServices {
  readonly #country = 'DE';
  inList(): boolean {
    throw new Error('the compile-time inList must not be called when an evaluation passes lists');
  }
  ipInfo(): IpInfo {
    return { country: this.#country };
  }
}

describe('celRuleCompiler and lists', () => {
  const environment = { eventFields: { ip: 'ip' as const }, features: {}, lists: ['blocked'], models: [] };
  const compiled = celRuleCompiler(new Enrichment()).compile(
    [{ id: 'r', when: "in_list('blocked', event.ip) && ip_info(event.ip).country == 'DE'" }],
    environment,
  );
  const activation = (ip: string): RuleActivation => ({ event: { ip }, features: {}, models: {} });

  it("answers in_list from the evaluation's membership and keeps the host's other services", () => {
    const rules = compiled.rules;
    if (rules === undefined) throw new Error(JSON.stringify(compiled.errors));
    const lists = { inList: (name: string, value: unknown) => name === 'blocked' && value === '192.0.2.1' };
    for (const [ip, expected] of [
      ['192.0.2.1', true],
      ['192.0.2.2', false],
    ] as const) {
      rules.prepare(activation(ip));
      expect(rules.evaluate(0, activation(ip), lists)).toBe(expected);
    }
  });

  it('refuses a list the environment does not name', () => {
    const result = celRuleCompiler().compile(
      [{ id: 'r', when: "in_list('unknown_list', event.ip)" }],
      environment,
    );
    expect(result.errors.map((error) => error.message).join()).toContain("unknown list 'unknown_list'");
  });
});

describe('celRuleCompiler under evaluatePolicy (all rules in one call)', () => {
  const environment = {
    eventFields: { ip: 'ip' as const, count: 'integer' as const },
    features: {},
    lists: ['blocked'],
    models: [],
  };
  const rules = [
    { id: 'miss', when: 'event.count > 100', verdict: 'reject' as const },
    { id: 'listed', when: "in_list('blocked', event.ip)", verdict: 'review' as const },
    { id: 'broken', when: 'event.count / 0 > 1', verdict: 'reject' as const },
  ];
  const policy = (strategy: 'worst' | 'first_match') =>
    compilePolicy(
      celRuleCompiler(),
      {
        tenantId: 't1',
        eventType: 'login',
        version: 1,
        policy: { strategy, on_missing: 'not_hit', rules },
        createdAt: new Date(0).toISOString(),
        createdBy: 'test',
      },
      environment,
    );
  const activation: RuleActivation = { event: { ip: '192.0.2.1', count: 3 }, features: {}, models: {} };
  const lists = { inList: (name: string, value: unknown) => name === 'blocked' && value === '192.0.2.1' };

  it('answers in_list from the lists passed, and reports an erroring rule with its message', () => {
    const outcome = evaluatePolicy(policy('worst'), activation, lists);
    expect(outcome.verdict).toBe('review');
    expect(outcome.rules.map((hit) => hit.id)).toEqual(['listed']);
    expect(outcome.errors).toEqual([{ rule: 'broken', message: 'divide by zero' }]);
  });

  it('stops at the first hit for first_match: later rules are not evaluated', () => {
    const outcome = evaluatePolicy(policy('first_match'), activation, lists);
    expect(outcome.rules.map((hit) => hit.id)).toEqual(['listed']);
    expect(outcome.errors).toEqual([]);
    // Without the hit, the erroring rule is reached.
    expect(evaluatePolicy(policy('first_match'), activation).errors.map((error) => error.rule)).toEqual([
      'broken',
    ]);
  });
});
