import type { PolicyInput } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import { DecisionService } from '../decision/decision-service.js';
import { MemoryDecisionLog } from '../memory/memory-decision-log.js';
import { ConfigRegistry } from '../tenancy/config-registry.js';
import { celRuleCompiler } from './cel-rule-compiler.js';
import { PolicyStage } from './policy-stage.js';
import { compilePolicy, type ServingPolicies } from './serving-policies.js';
import { TenantRuleCpu } from './tenant-rule-cpu.js';

describe('TenantRuleCpu', () => {
  it('gives the policy budget until the share is spent, then what is left, then refills', () => {
    let now = 0;
    const cpu = new TenantRuleCpu(100, 50, () => now);
    expect(cpu.budget('t1', 10)).toBe(10);
    cpu.charge('t1', 45);
    expect(cpu.budget('t1', 10)).toBe(5);
    cpu.charge('t1', 20);
    expect(cpu.budget('t1', 10)).toBe(0);
    expect(cpu.exhausted('t1')).toBe(true);
    // Another tenant is not touched.
    expect(cpu.budget('t2', 10)).toBe(10);
    expect(cpu.exhausted('t2')).toBe(false);
    // 100 ms a second: after 100 ms the bucket holds -15 + 10 = -5, after 200 ms more it is full.
    now = 100;
    expect(cpu.budget('t1', 10)).toBe(0);
    now = 300;
    expect(cpu.budget('t1', 10)).toBe(10);
    expect(cpu.exhausted('t1')).toBe(false);
  });

  it('ignores evaluations the guard did not time, and refuses a share that is not positive', () => {
    const cpu = new TenantRuleCpu(100, 50, () => 0);
    cpu.charge('t1', 0);
    cpu.charge('t1', Number.NaN);
    expect(cpu.budget('t1', 10)).toBe(10);
    expect(() => new TenantRuleCpu(0)).toThrow(RangeError);
    expect(() => new TenantRuleCpu(Number.NaN)).toThrow(RangeError);
  });
});

const at = new Date(0).toISOString();
/** Tags that make `slow` run for milliseconds: each is concatenated, then measured code point by code point. */
const tags = Array.from(
  { length: 200 },
  (_, index) => `${'a'.repeat(3996)}${String(index).padStart(4, '0')}`,
);
const policy: PolicyInput = {
  on_missing: 'not_hit',
  rules: [
    { id: 'slow', when: 'event.tags.map(t, t + t + t + t).exists(s, s.size() == 1)', verdict: 'reject' },
    { id: 'after', when: "event.account_id == 'u-1'", score: 10 },
  ],
};

/** Two tenants with the same slow policy, behind one PolicyStage with a tiny rule CPU share. */
function setUp(clock: () => number) {
  const registry = new ConfigRegistry();
  const serving = new Map<string, ServingPolicies>();
  for (const tenantId of ['t1', 't2']) {
    registry.putTenant({
      id: tenantId,
      name: tenantId,
      rateLimit: null,
      maxConcurrency: null,
      createdAt: at,
      updatedAt: at,
    });
    registry.putEventType({
      tenantId,
      name: 'signup',
      version: 1,
      updatedAt: at,
      schema: { fields: { account_id: { type: 'string', required: true }, tags: { type: 'string_list' } } },
    });
    const main = compilePolicy(
      celRuleCompiler(),
      { tenantId, eventType: 'signup', version: 1, policy, createdAt: at, createdBy: 'test' },
      { eventFields: { account_id: 'string', tags: 'string_list' }, features: {}, lists: [], models: [] },
    );
    serving.set(tenantId, {
      state: {
        tenantId,
        eventType: 'signup',
        published: 1,
        history: [],
        canary: null,
        shadows: [],
        updatedAt: at,
      },
      main,
      canary: null,
      shadows: [],
    });
  }
  // A budget per event far above what the policy needs; a share of 1 ms per second that holds 1 µs,
  // so one slow evaluation spends it and the fake clock alone refills it.
  const stage = new PolicyStage(
    (tenantId) => serving.get(tenantId),
    undefined,
    10_000,
    new TenantRuleCpu(1, 0.001, clock),
  );
  return new DecisionService({ registry, log: new MemoryDecisionLog(), stages: [stage] });
}

const signup = (id: string) => ({ type: 'signup', id, fields: { account_id: 'u-1', tags } });

describe('a tenant over its rule CPU share', () => {
  it('has its next evaluations cut off, without touching other tenants, until its share refills', async () => {
    let now = 0;
    const service = setUp(() => now);
    const first = await service.decide('t1', signup('e1'));
    expect(first.response.degraded ?? []).not.toContain('policy_cpu');
    expect(first.response.score).toBe(10);

    const second = await service.decide('t1', signup('e2'));
    expect(second.response.degraded).toContain('policy_cpu');
    expect(second.response.errors.map((error) => error.rule)).toEqual(['slow', 'after']);

    // The other tenant's first evaluation runs in full.
    const other = await service.decide('t2', signup('e3'));
    expect(other.response.degraded ?? []).not.toContain('policy_cpu');
    expect(other.response.score).toBe(10);

    // An hour later t1's share has refilled.
    now += 3_600_000;
    const later = await service.decide('t1', signup('e4'));
    expect(later.response.degraded ?? []).not.toContain('policy_cpu');
    expect(later.response.score).toBe(10);
  });
});
