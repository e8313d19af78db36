import { describe, expect, it } from 'vitest';
import type { IpInfo, RuleServices } from '../rules/vigil-functions.js';
import { celRuleCompiler } from './cel-rule-compiler.js';
import type { RuleActivation } from './policy-model.js';

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
