import { performance } from 'node:perf_hooks';
import type { PolicyInput } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryDecisionLog } from '../memory/memory-decision-log.js';
import { celRuleCompiler } from '../policy/cel-rule-compiler.js';
import { PolicyStage } from '../policy/policy-stage.js';
import { compilePolicy, type ServingPolicies } from '../policy/serving-policies.js';
import { ConfigRegistry } from '../tenancy/config-registry.js';
import { planDeadline } from './deadline-plan.js';
import type { DecisionContext, DecisionStage } from './decision-context.js';
import { DecisionService } from './decision-service.js';

const at = new Date(0).toISOString();

/** A login event type whose rules read `features.failures`, with one policy published. */
function setUp(stages: DecisionStage[], policy: PolicyInput) {
  const registry = new ConfigRegistry();
  registry.putTenant({
    id: 't1',
    name: 'acme',
    rateLimit: null,
    maxConcurrency: null,
    createdAt: at,
    updatedAt: at,
  });
  registry.putEventType({
    tenantId: 't1',
    name: 'login',
    version: 1,
    updatedAt: at,
    schema: { fields: { account_id: { type: 'string', required: true } } },
  });
  const main = compilePolicy(
    celRuleCompiler(),
    { tenantId: 't1', eventType: 'login', version: 1, policy, createdAt: at, createdBy: 'test' },
    { eventFields: { account_id: 'string' }, features: { failures: 'int' }, lists: [], models: [] },
  );
  const serving: ServingPolicies = {
    state: {
      tenantId: 't1',
      eventType: 'login',
      published: 1,
      history: [],
      canary: null,
      shadows: [],
      updatedAt: at,
    },
    main,
    canary: null,
    shadows: [],
  };
  const log = new MemoryDecisionLog();
  const service = new DecisionService({
    registry,
    log,
    stages: [...stages, new PolicyStage(() => serving)],
  });
  return { service, log };
}

/** Rules on the feature, on the event alone, and `on_missing: review`. */
const policy: PolicyInput = {
  strategy: 'worst',
  on_missing: 'review',
  rules: [
    { id: 'many-failures', when: 'features.failures >= 3', verdict: 'reject' },
    { id: 'vip', when: "event.account_id == 'vip'", verdict: 'challenge' },
  ],
};

/** A features stage answering `failures` after `delay` (a promise from `settle`), or never. */
function featureStage(settle: () => Promise<void>, failures = 5): DecisionStage {
  return {
    name: 'features',
    run: (context: DecisionContext) =>
      settle().then(() => {
        context.features = { failures };
      }),
  };
}

const after = (ms: number) => () => new Promise<void>((resolve) => setTimeout(resolve, ms));
const login = (id: string, timeout_ms?: number) => ({
  type: 'login',
  id,
  fields: { account_id: 'vip' },
  ...(timeout_ms === undefined ? {} : { timeout_ms }),
});

describe('deadlines and stage budgets', () => {
  it('uses a stage that answers within its budget', async () => {
    const { service } = setUp([featureStage(after(1))], policy);
    const { response } = await service.decide('t1', login('in-time', 1000));
    expect(response.degraded).toEqual([]);
    expect(response.verdict).toBe('reject');
    expect(response.rules.map((rule) => rule.id)).toEqual(['many-failures', 'vip']);
  });

  it('leaves out a stage slower than its budget: named in degraded, on_missing applies, answered in time', async () => {
    let late!: Promise<void>;
    let answered = false;
    const stage = featureStage(() => {
      late = after(300)().then(() => {
        answered = true;
      });
      return late;
    });
    const { service, log } = setUp([stage], policy);
    const { response } = await service.decide('t1', login('slow', 100));
    expect(answered).toBe(false);
    expect(response.degraded).toEqual(['features']);
    // Without the feature the rule on it could not be evaluated: on_missing review, not reject.
    expect(response.verdict).toBe('review');
    expect(response.errors).toEqual([
      { rule: 'many-failures', message: expect.stringContaining('failures') },
    ]);
    expect(response.rules.map((rule) => rule.id)).toEqual(['vip']);
    // The answer did not wait for the stage (it answers at 300 ms; the deadline is 100 ms).
    expect(response.latency_ms).toBeLessThan(300);
    // The stage's late answer changes neither the record nor the context the shadows read.
    await late;
    const stored = await log.get('t1', response.decision_id);
    expect(stored?.features).toBeUndefined();
    expect(stored?.response?.verdict).toBe('review');
  });

  it('ignores the late answer of a left-out stage while a later stage is still waited for', async () => {
    // Features get a tenth of 800 ms and answer at 300 ms; the lists stage answers at 400 ms, in its
    // budget. The rules run after it, when the features' late answer has long been written.
    const features = { ...featureStage(after(300)), budgetShare: 0.1 };
    const lists: DecisionStage = { name: 'lists', run: after(400) };
    const { service } = setUp([features, lists], policy);
    const { response } = await service.decide('t1', login('late-write', 1000));
    expect(response.degraded).toEqual(['features']);
    expect(response.verdict).toBe('review');
  });

  it('leaves out a stage that rejects or throws, and decides with the rest', async () => {
    const rejecting: DecisionStage = { name: 'lists', run: () => Promise.reject(new Error('store down')) };
    const throwing: DecisionStage = {
      name: 'models',
      run: () => {
        throw new Error('model crashed');
      },
    };
    const { service } = setUp([rejecting, throwing, featureStage(after(0))], policy);
    const { response } = await service.decide('t1', login('failing'));
    expect(response.degraded).toEqual(['lists', 'models']);
    expect(response.verdict).toBe('reject');
  });

  it('counts the deadline from the arrival the caller passes', async () => {
    // The features would come in 5 ms, but the request arrived 200 ms ago with 100 ms to answer.
    const { service } = setUp([featureStage(after(5))], policy);
    const arrivedAt = performance.now() - 200;
    const { response } = await service.decide('t1', login('queued', 100), arrivedAt);
    expect(response.degraded).toEqual(['features']);
    expect(response.verdict).toBe('review');
    expect(response.latency_ms).toBeGreaterThanOrEqual(200);
  });

  it('still uses a stage that answers within the same turn when no budget is left', async () => {
    const { service } = setUp([featureStage(() => Promise.resolve())], policy);
    const { response } = await service.decide('t1', login('no-time', 5), performance.now() - 1000);
    expect(response.degraded).toEqual([]);
    expect(response.verdict).toBe('reject');
  });

  it('gives a stage with a budget share only its share, so the next stage keeps time', async () => {
    const never: DecisionStage = { name: 'models', budgetShare: 0.25, run: () => new Promise(() => {}) };
    const { service } = setUp([never, featureStage(after(5))], policy);
    const { response } = await service.decide('t1', login('shared', 1000));
    expect(response.degraded).toEqual(['models']);
    expect(response.verdict).toBe('reject');
  });

  it('names a stage that answered degraded once, and uses its answer', async () => {
    const fallback: DecisionStage = {
      name: 'features',
      run: async (context) => {
        context.features = { failures: 4 };
        context.markDegraded('features');
      },
    };
    const { service } = setUp([fallback], policy);
    const { response } = await service.decide('t1', login('fallback'));
    expect(response.degraded).toEqual(['features']);
    expect(response.verdict).toBe('reject');
  });

  it('plans reserves for the rules and the durable write within the timeout', () => {
    expect(planDeadline(1000, 100)).toEqual({
      arrivedAt: 1000,
      deadline: 1100,
      stagesCutoff: 1080,
      rulesCutoff: 1090,
    });
    expect(planDeadline(0, 5)).toEqual({ arrivedAt: 0, deadline: 5, stagesCutoff: 3, rulesCutoff: 4 });
    expect(planDeadline(0, 5000)).toMatchObject({ stagesCutoff: 4980, rulesCutoff: 4990 });
  });
});
