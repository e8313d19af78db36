import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, startTestNode, type TestNode, type TestTenant } from './harness.js';

/**
 * Deadlines end to end and the CPU guard, over HTTP. Faults are injected (a slow body, a slow
 * counter store, a pathological rule); assertions are on what the answer says, not on timings.
 */
let testNode: TestNode;
let slowco: TestTenant;
let fastco: TestTenant;

/** Passes the static cost check but runs for tens of ms on 1,000 tags of 4,000 characters. */
const pathological = 'event.tags.map(t, t + t + t + t).exists(s, s.size() == 1)';
const bigTags = Array.from(
  { length: 1000 },
  (_, index) => `${'a'.repeat(3996)}${String(index).padStart(4, '0')}`,
);

async function publish(tenant: TestTenant, policy: object): Promise<void> {
  const created = await testNode.as(tenant.apiKey, 'POST', '/v1/manage/policies/payment/versions', policy);
  expect(created.statusCode, created.body).toBe(201);
  const { version } = created.json() as { version: number };
  const published = await testNode.as(
    tenant.apiKey,
    'POST',
    `/v1/manage/policies/payment/versions/${version}/publish`,
  );
  expect(published.statusCode, published.body).toBe(200);
}

const payment = (id: string, fields: Record<string, unknown> = {}, timeout_ms?: number) => ({
  type: 'payment',
  id,
  fields: { account_id: 'u-1', amount: 50, ...fields },
  ...(timeout_ms === undefined ? {} : { timeout_ms }),
});

interface Decision {
  verdict: string;
  rules: { id: string }[];
  errors: { rule: string; message: string }[];
  degraded: string[];
  latency_ms: number;
}

beforeAll(async () => {
  // Room for an event with 1,000 tags of 4,000 characters (the most the schema allows).
  testNode = await startTestNode({ VIGIL_BODY_LIMIT_BYTES: String(8 * 1024 * 1024) });
  slowco = await testNode.tenant('slowco');
  fastco = await testNode.tenant('fastco');
  await publish(slowco, {
    on_missing: 'review',
    rules: [
      { id: 'small', when: 'event.amount < 100.0', verdict: 'challenge' },
      { id: 'pathological', when: pathological, verdict: 'reject' },
    ],
  });
  await publish(fastco, {
    rules: [
      { id: 'large', when: 'event.amount > 1000.0', verdict: 'reject' },
      { id: 'tagged', when: "event.tags.exists(t, t.startsWith('fraud'))", verdict: 'review' },
    ],
  });
}, 60_000);

afterAll(async () => {
  await testNode.close();
});

describe('the CPU guard over HTTP', () => {
  it("cuts off one tenant's pathological rule while the other tenant's decisions are made in full", async () => {
    const slow = Array.from({ length: 3 }, (_, index) =>
      testNode.as(slowco.apiKey, 'POST', '/v1/decisions', payment(`slow-${index}`, { tags: bigTags }, 1000)),
    );
    const fast = Array.from({ length: 20 }, (_, index) =>
      testNode.as(
        fastco.apiKey,
        'POST',
        '/v1/decisions',
        // A long deadline: parsing the slow tenant's 4 MB bodies takes time too, and this test is
        // about the rules, not about that.
        payment(`fast-${index}`, { amount: index % 2 === 0 ? 5000 : 5, tags: ['fraud-ring'] }, 5000),
      ),
    );
    const [slowAnswers, fastAnswers] = await Promise.all([Promise.all(slow), Promise.all(fast)]);
    for (const response of slowAnswers) {
      expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
      const decision = response.json() as Decision;
      expect(decision.errors).toEqual([{ rule: 'pathological', message: 'cpu budget exceeded' }]);
      expect(decision.degraded).toEqual(['policy_cpu']);
      // The rule before it counts; on_missing review applies to the one cut off.
      expect(decision.rules.map((rule) => rule.id)).toEqual(['small']);
      expect(decision.verdict).toBe('review');
      expect(decision.latency_ms).toBeLessThanOrEqual(1000 + 1);
    }
    fastAnswers.forEach((response, index) => {
      expect(response.statusCode).toBe(200);
      const decision = response.json() as Decision;
      expect(decision.degraded).toEqual([]);
      expect(decision.errors).toEqual([]);
      expect(decision.verdict).toBe(index % 2 === 0 ? 'reject' : 'review');
    });
    expect((await testNode.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  }, 60_000);
});

const manyTags = Array.from({ length: 1000 }, (_, index) => `tag-${index}`);

/** A body that starts arriving only after `delayMs`, as from a slow client. */
function slowBody(body: string, delayMs: number): Readable {
  let started = false;
  return new Readable({
    read() {
      if (started) return;
      started = true;
      setTimeout(() => {
        this.push(body);
        this.push(null);
      }, delayMs);
    },
  });
}

describe('deadlines over HTTP', () => {
  it('counts the deadline from the arrival: a body slower than the timeout leaves no time for costly rules', async () => {
    const response = await testNode.app.inject({
      method: 'POST',
      url: '/v1/decisions',
      headers: { authorization: `Bearer ${fastco.apiKey}`, 'content-type': 'application/json' },
      // 1,000 tags: enough work for the guard to look at the clock while the rule scans them.
      payload: slowBody(JSON.stringify(payment('slow-body', { amount: 5000, tags: manyTags }, 50)), 150),
    });
    expect(response.statusCode, response.body).toBe(200);
    const decision = response.json() as Decision;
    // The cheap rule runs; the guarded one finds the deadline gone and follows on_missing.
    expect(decision.rules.map((rule) => rule.id)).toEqual(['large']);
    expect(decision.errors).toEqual([
      { rule: 'tagged', message: 'deadline reached before the rule finished' },
    ]);
    expect(decision.degraded).toEqual(['policy_deadline']);
    expect(decision.latency_ms).toBeGreaterThanOrEqual(150);
  });

  it('leaves out a counter store slower than the features budget and answers without it', async () => {
    const feature = await testNode.as(fastco.apiKey, 'PUT', '/v1/manage/features/payments_1h', {
      aggregation: 'count',
      by: ['account_id'],
      window: '1h',
      event_types: ['payment'],
    });
    expect(feature.statusCode, feature.body).toBeLessThan(300);
    await publish(fastco, {
      on_missing: 'review',
      rules: [{ id: 'velocity', when: 'features.payments_1h > 100', verdict: 'reject' }],
    });
    const fault = await testNode.admin('POST', '/v1/admin/faults', {
      component: 'counter_store',
      kind: 'latency',
      latency_ms: 5000,
      tenant: fastco.id,
      duration_seconds: 60,
    });
    expect(fault.statusCode, fault.body).toBe(201);
    try {
      const response = await testNode.as(
        fastco.apiKey,
        'POST',
        '/v1/decisions',
        payment('slow-counters', {}, 50),
      );
      expect(response.statusCode, response.body).toBe(200);
      const decision = response.json() as Decision;
      expect(decision.degraded).toContain('features');
      expect(decision.verdict).not.toBe('reject');
      // Answered without waiting for the injected 5 s.
      expect(decision.latency_ms).toBeLessThan(5000);
    } finally {
      const id = (fault.json() as { id: string }).id;
      await testNode.app.inject({
        method: 'DELETE',
        url: `/v1/admin/faults/${id}`,
        headers: { authorization: `Bearer ${adminToken}` },
      });
    }
  });
});

describe('the CPU budget of the test endpoint', () => {
  it('is the configured VIGIL_POLICY_CPU_BUDGET_MS, as on the decision path', async () => {
    const generous = await startTestNode({
      VIGIL_BODY_LIMIT_BYTES: String(8 * 1024 * 1024),
      VIGIL_BATCH_BODY_LIMIT_BYTES: String(16 * 1024 * 1024),
      VIGIL_POLICY_CPU_BUDGET_MS: '1000',
    });
    try {
      const tenant = await generous.tenant('generous');
      const response = await generous.as(tenant.apiKey, 'POST', '/v1/manage/policies/payment/test', {
        policy: {
          on_missing: 'review',
          rules: [{ id: 'pathological', when: pathological, verdict: 'reject' }],
        },
        events: [{ type: 'payment', id: 'heavy', fields: { account_id: 'a', tags: bigTags } }],
      });
      expect(response.statusCode, response.body).toBe(200);
      const [result] = (response.json() as { results: { verdict: string; errors: unknown[] }[] }).results;
      // Within a second of budget the rule runs to its end (the default 10 ms would cut it off).
      expect(result).toMatchObject({ verdict: 'accept', errors: [] });
    } finally {
      await generous.close();
    }
  }, 30_000);
});
