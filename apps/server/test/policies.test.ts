import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode, type TestTenant } from './harness.js';
import { expectError } from './support.js';

let node: TestNode;
let tenant: TestTenant;

beforeAll(async () => {
  node = await startTestNode();
  tenant = await node.tenant();
});
afterAll(async () => {
  await node.close();
});

const manage = (method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) =>
  node.as(tenant.apiKey, method, `/v1/manage${url}`, body);

let eventCounter = 0;
async function decide(fields: Record<string, unknown>, id = `evt-${++eventCounter}`) {
  const response = await node.as(tenant.apiKey, 'POST', '/v1/decisions', {
    type: 'payment',
    id,
    fields: { account_id: 'u-1', ...fields },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as {
    decision_id: string;
    verdict: string;
    score: number;
    rules: { id: string }[];
    tags: string[];
    errors: { rule: string; message: string }[];
    policy_version: number | null;
  };
}

async function saveVersion(policy: unknown): Promise<number> {
  const response = await manage('POST', '/policies/payment/versions', policy);
  expect(response.statusCode, response.body).toBe(201);
  return (response.json() as { version: number }).version;
}

const worst = (threshold: number, verdict = 'reject') => ({
  strategy: 'worst',
  rules: [
    {
      id: 'big',
      name: 'Large amount',
      when: `event.amount > ${threshold}.0`,
      verdict,
      tags: ['amount'],
      reason: 'over limit',
    },
  ],
});

describe('policies', () => {
  it('refuses a draft that does not compile, listing every error with rule, line, column and caret', async () => {
    const response = await manage('POST', '/policies/payment/versions', {
      rules: [
        { id: 'type-error', when: 'event.amount > "ten"', verdict: 'reject' },
        { id: 'unknown-field', when: 'event.amount > 1.0 &&\n  event.nope == 1', verdict: 'reject' },
        { id: 'not-boolean', when: 'event.amount + 1.0', verdict: 'reject' },
        { id: 'parse-error', when: 'event.amount >', verdict: 'reject' },
      ],
    });
    const body = expectError(response, 422, 'invalid_policy') as {
      error: { details: { rule: string; line: number; column: number; message: string }[] };
    };
    const byRule = new Map(body.error.details.map((detail) => [detail.rule, detail]));
    expect([...byRule.keys()].sort()).toEqual(['not-boolean', 'parse-error', 'type-error', 'unknown-field']);
    expect(byRule.get('unknown-field')).toMatchObject({ line: 2, column: 8 });
    expect(byRule.get('unknown-field')?.message).toContain('^');
    expect(byRule.get('type-error')).toMatchObject({ line: 1, column: 14 });
  });

  it('refuses duplicate rule ids and an unknown event type', async () => {
    const duplicate = { rules: [worst(1).rules[0], worst(2).rules[0]] };
    expectError(await manage('POST', '/policies/payment/versions', duplicate), 422, 'invalid_policy');
    expectError(await manage('POST', '/policies/nothing/versions', worst(1)), 404, 'not_found');
  });

  it('serves a published version at once; decisions carry its version, hits, tags and reasons', async () => {
    expect((await decide({ amount: 5000 })).policy_version).toBeNull();
    const version = await saveVersion(worst(1000));
    expect((await decide({ amount: 5000 })).policy_version).toBeNull();
    const published = await manage('POST', `/policies/payment/versions/${version}/publish`);
    expect(published.statusCode, published.body).toBe(200);
    const decision = await decide({ amount: 5000 });
    expect(decision).toMatchObject({ verdict: 'reject', policy_version: version, tags: ['amount'] });
    expect(decision.rules).toEqual([
      { id: 'big', name: 'Large amount', verdict: 'reject', reason: 'over limit' },
    ]);
    expect((await decide({ amount: 10 })).verdict).toBe('accept');
  });

  it('reports a rule that fails at run time in errors, and on_missing: review raises the verdict', async () => {
    const notHit = await saveVersion({
      on_missing: 'not_hit',
      rules: [{ id: 'ip-rule', when: 'event.ip == "203.0.113.1"', verdict: 'reject' }],
    });
    await manage('POST', `/policies/payment/versions/${notHit}/publish`);
    const missing = await decide({ amount: 1 });
    expect(missing.verdict).toBe('accept');
    expect(missing.errors.map((error) => error.rule)).toEqual(['ip-rule']);
    const review = await saveVersion({
      on_missing: 'review',
      rules: [{ id: 'ip-rule', when: 'event.ip == "203.0.113.1"', verdict: 'reject' }],
    });
    await manage('POST', `/policies/payment/versions/${review}/publish`);
    expect((await decide({ amount: 1 })).verdict).toBe('review');
  });

  it('score strategy: sums scores and maps thresholds', async () => {
    const version = await saveVersion({
      strategy: 'score',
      thresholds: { review: 40, reject: 80 },
      rules: [
        { id: 'a', when: 'event.amount > 100.0', score: 50 },
        { id: 'b', when: 'event.channel == "web"', score: 40 },
      ],
    });
    await manage('POST', `/policies/payment/versions/${version}/publish`);
    expect(await decide({ amount: 500, channel: 'app' })).toMatchObject({ verdict: 'review', score: 50 });
    expect(await decide({ amount: 500, channel: 'web' })).toMatchObject({ verdict: 'reject', score: 90 });
  });

  it('rolls back to the previous published version, and refuses when there is none left', async () => {
    const first = await saveVersion(worst(10));
    await manage('POST', `/policies/payment/versions/${first}/publish`);
    const second = await saveVersion(worst(10, 'review'));
    await manage('POST', `/policies/payment/versions/${second}/publish`);
    expect((await decide({ amount: 50 })).verdict).toBe('review');
    const rolledBack = await manage('POST', '/policies/payment/rollback');
    expect(rolledBack.json()).toMatchObject({ published: first });
    expect(await decide({ amount: 50 })).toMatchObject({ verdict: 'reject', policy_version: first });
    const state = (await manage('GET', '/policies/payment')).json() as { history: number[] };
    for (let remaining = state.history.length; remaining > 0; remaining -= 1)
      await manage('POST', '/policies/payment/rollback');
    expectError(await manage('POST', '/policies/payment/rollback'), 409, 'invalid_state');
  });

  it('splits traffic to a canary deterministically by event id', async () => {
    const main = await saveVersion(worst(10, 'review'));
    await manage('POST', `/policies/payment/versions/${main}/publish`);
    const canary = await saveVersion(worst(10, 'reject'));
    const response = await manage('POST', `/policies/payment/versions/${canary}/publish`, {
      canary_percent: 30,
    });
    expect(response.json()).toMatchObject({ published: main, canary: { version: canary, percent: 30 } });
    const versions = [];
    for (let index = 0; index < 200; index += 1)
      versions.push((await decide({ amount: 50 }, `canary-${index}`)).policy_version);
    const onCanary = versions.filter((version) => version === canary).length;
    expect(onCanary).toBeGreaterThan(30);
    expect(onCanary).toBeLessThan(100);
    // The same event id always lands on the same side: a retry is a replay, and a fresh node would agree.
    const again = await decide({ amount: 50 }, 'canary-7');
    expect(again.policy_version).toBe(versions[7]);
    const promoted = await manage('POST', `/policies/payment/versions/${canary}/publish`);
    expect(promoted.json()).toMatchObject({ published: canary, canary: null });
  });

  it('evaluates shadow versions off the response path, stores their results and counts them', async () => {
    const live = await saveVersion(worst(10, 'review'));
    await manage('POST', `/policies/payment/versions/${live}/publish`);
    const shadow = await saveVersion(worst(10, 'reject'));
    expect((await manage('POST', `/policies/payment/versions/${shadow}/shadow`)).json()).toMatchObject({
      shadows: [shadow],
    });
    const decision = await decide({ amount: 50 });
    expect(decision).toMatchObject({ verdict: 'review', policy_version: live });
    let stored: { shadows?: { version: number; verdict: string }[] } = {};
    for (let attempt = 0; attempt < 50 && (stored.shadows ?? []).length === 0; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stored = (await manage('GET', `/decisions/${decision.decision_id}`)).json() as typeof stored;
    }
    expect(stored.shadows).toEqual([expect.objectContaining({ version: shadow, verdict: 'reject' })]);
    const metrics = (await node.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(
      new RegExp(
        `vigil_shadow_decisions_total\\{[^}]*version="${shadow}"[^}]*verdict="reject"[^}]*agrees="false"`,
      ),
    );
    await manage('POST', `/policies/payment/versions/${shadow}/shadow`, { enabled: false });
    expect((await manage('GET', '/policies/payment')).json()).toMatchObject({ shadows: [] });
  });

  it('tests a draft on sample events without storing or counting anything', async () => {
    const before = (await manage('GET', '/decisions?limit=1000')).json() as { decisions: unknown[] };
    const response = await manage('POST', '/policies/payment/test', {
      policy: { rules: [{ id: 'r', when: 'event.amount > 10.0', verdict: 'review', tags: ['t'] }] },
      events: [
        { type: 'payment', id: 'sample-1', fields: { account_id: 'a', amount: 11 } },
        { type: 'payment', id: 'sample-2', fields: { account_id: 'a', amount: 1 } },
        { type: 'payment', id: 'sample-3', fields: { amount: 'x' } },
      ],
    });
    expect(response.statusCode, response.body).toBe(200);
    const results = (response.json() as { results: Record<string, unknown>[] }).results;
    expect(results[0]).toMatchObject({ event_id: 'sample-1', verdict: 'review', tags: ['t'] });
    expect(results[1]).toMatchObject({ event_id: 'sample-2', verdict: 'accept' });
    expect(results[2]).toMatchObject({ event_id: 'sample-3', error: { code: 'invalid_event' } });
    const after = (await manage('GET', '/decisions?limit=1000')).json() as { decisions: unknown[] };
    expect(after.decisions.length).toBe(before.decisions.length);
    expect((await manage('GET', '/decisions?entity=a')).json()).toMatchObject({ decisions: [] });
  });

  it('lists versions with status, never changes a saved version, and audits every change with a diff', async () => {
    const listed = (await manage('GET', '/policies/payment/versions')).json() as {
      versions: { version: number; status: string }[];
    };
    expect(listed.versions.filter((version) => version.status === 'published')).toHaveLength(1);
    expect(new Set(listed.versions.map((version) => version.status))).toContain('retired');
    expect((await manage('PUT', '/policies/payment/versions/1', worst(1))).statusCode).toBe(404);
    const audit = (await manage('GET', '/audit?limit=1000')).json() as {
      entries: { action: string; actor: string; diff: { before: unknown; after: unknown } }[];
    };
    const actions = new Set(audit.entries.map((entry) => entry.action));
    for (const action of [
      'policy.version.create',
      'policy.publish',
      'policy.rollback',
      'policy.shadow.start',
    ]) {
      expect(actions).toContain(action);
    }
    const publish = audit.entries.find((entry) => entry.action === 'policy.publish');
    expect(publish?.actor).toBe(`key:${tenant.keyId}`);
    expect(publish?.diff.after).toHaveProperty('published');
  });

  it('refuses an event-type change that would break a serving policy', async () => {
    const version = await saveVersion({
      rules: [{ id: 'uses-channel', when: 'event.channel == "web"', verdict: 'review' }],
    });
    await manage('POST', `/policies/payment/versions/${version}/publish`);
    const withoutChannel = {
      fields: { account_id: { type: 'string', required: true }, amount: { type: 'number' } },
    };
    expectError(await manage('PUT', '/event-types/payment', withoutChannel), 422, 'invalid_config');
    expect((await decide({ channel: 'web' })).verdict).toBe('review');
  });
});

describe('policies after a restart', () => {
  it('serves the published version from the stored configuration', async () => {
    const version = await saveVersion(worst(1, 'challenge'));
    await manage('POST', `/policies/payment/versions/${version}/publish`);
    await node.node.close();
    const { loadConfig } = await import('../src/config.js');
    const { createNode } = await import('../src/node.js');
    const restarted = await createNode(
      loadConfig({
        VIGIL_DATA_DIR: node.dataDir,
        VIGIL_ADMIN_TOKEN: 'test-admin-token-0123456789',
        VIGIL_LOG_LEVEL: 'silent',
      }),
    );
    const response = await restarted.app.inject({
      method: 'POST',
      url: '/v1/decisions',
      headers: { authorization: `Bearer ${tenant.apiKey}` },
      payload: { type: 'payment', id: 'after-restart', fields: { account_id: 'u', amount: 5 } },
    });
    expect(response.json()).toMatchObject({ verdict: 'challenge', policy_version: version });
    await restarted.close();
    node.node = restarted;
  });
});
