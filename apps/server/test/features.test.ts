import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createNode } from '../src/node.js';
import { adminToken, startTestNode, type TestNode, type TestTenant } from './harness.js';
import { type NodeProcess, startProcess } from './process-harness.js';
import { expectError } from './support.js';

const loginSchema = {
  fields: {
    account_id: { type: 'string', required: true },
    ip: { type: 'ip' },
    device_id: { type: 'string' },
    success: { type: 'boolean', required: true },
    amount: { type: 'number' },
  },
};
const failedLogins = {
  aggregation: 'count',
  by: ['account_id'],
  window: '1h',
  event_types: ['login'],
  filter: 'event.success == false',
};
const bruteForcePolicy = {
  strategy: 'worst',
  on_missing: 'review',
  rules: [
    {
      id: 'brute-force',
      when: 'features.failed_logins_1h >= 5',
      verdict: 'reject',
      reason: 'too many failures',
    },
  ],
};

let node: TestNode;
let tenant: TestTenant;
const manage = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, body?: unknown) =>
  node.as(tenant.apiKey, method, `/v1/manage${url}`, body);

async function login(id: string, fields: Record<string, unknown>) {
  const response = await node.as(tenant.apiKey, 'POST', '/v1/decisions', { type: 'login', id, fields });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { decision_id: string; verdict: string; errors: { rule: string }[] };
}

async function featureValues(decisionId: string): Promise<Record<string, unknown>> {
  const response = await manage('GET', `/decisions/${decisionId}`);
  expect(response.statusCode, response.body).toBe(200);
  return (response.json() as { features: Record<string, unknown> }).features;
}

async function untilReady(send: (method: 'GET', url: string) => Promise<{ json(): unknown }>, url: string) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const body = (await send('GET', url)).json() as { status: string };
    if (body.status !== 'backfilling') return body;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('backfill did not finish');
}

beforeAll(async () => {
  node = await startTestNode();
  tenant = await node.tenant();
  expect((await manage('PUT', '/event-types/login', loginSchema)).statusCode).toBe(201);
});
afterAll(async () => {
  await node.close();
});

describe('feature definitions', () => {
  it('refuses invalid definitions with every problem', async () => {
    const response = await manage('PUT', '/features/bad', {
      aggregation: 'sum',
      by: ['account_id', 'nope'],
      window: '10s',
      event_types: ['login', 'payment', 'missing'],
      filter: 'event.success == 1',
    });
    const body = expectError(response, 422, 'invalid_config');
    const paths = (body.error.details ?? []).map((detail) => detail.path);
    expect(paths).toEqual(expect.arrayContaining(['window', 'field', 'by.1', 'event_types', 'filter']));
    expectError(
      await manage('PUT', '/features/bad', { ...failedLogins, aggregation: 'avg', field: 'account_id' }),
      422,
      'invalid_config',
    );
    expectError(
      await manage('PUT', '/features/bad', { ...failedLogins, window: '91d' }),
      422,
      'invalid_config',
    );
    expectError(await manage('PUT', '/features/bad', { ...failedLogins, extra: 1 }), 422, 'invalid_config');
    expectError(await manage('GET', '/features/bad'), 404, 'not_found');
  });

  it('creates, reads, lists, replaces and deletes a feature, with audit entries', async () => {
    const created = await manage('PUT', '/features/amount_sum_1d', {
      aggregation: 'sum',
      field: 'amount',
      by: ['account_id'],
      window: '1d',
      event_types: ['login', 'payment'],
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name: 'amount_sum_1d', value_type: 'double', version: 1 });
    expect(
      (
        await manage(
          'PUT',
          '/features/amount_sum_1d',
          created.json() && {
            aggregation: 'sum',
            field: 'amount',
            by: ['account_id'],
            window: '1d',
            event_types: ['login', 'payment'],
          },
        )
      ).json(),
    ).toMatchObject({ version: 1 });
    const replaced = await manage('PUT', '/features/amount_sum_1d', {
      aggregation: 'max',
      field: 'amount',
      by: ['account_id'],
      window: '2h',
      event_types: ['login'],
    });
    expect(replaced.statusCode).toBe(200);
    expect(replaced.json()).toMatchObject({ aggregation: 'max', version: 2 });
    const list = (await manage('GET', '/features')).json() as { features: { name: string }[] };
    expect(list.features.map((feature) => feature.name)).toContain('amount_sum_1d');
    expect((await manage('DELETE', '/features/amount_sum_1d')).statusCode).toBe(204);
    expectError(await manage('GET', '/features/amount_sum_1d'), 404, 'not_found');
    expectError(await manage('DELETE', '/features/amount_sum_1d'), 404, 'not_found');
    const audit = await node.admin('GET', `/v1/admin/audit?tenant=${tenant.id}`);
    expect(audit.body).toContain('feature.delete');
  });
});

describe('features on the decision path', () => {
  it('rejects the 5th failed login; retries count once, successes and other keys do not count', async () => {
    expect((await manage('PUT', '/features/failed_logins_1h', failedLogins)).statusCode).toBe(201);
    const version = await manage('POST', '/policies/login/versions', bruteForcePolicy);
    expect(version.statusCode, version.body).toBe(201);
    expect((await manage('POST', '/policies/login/versions/1/publish', {})).statusCode).toBe(200);

    const verdicts: string[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      verdicts.push((await login(`fail-${attempt}`, { account_id: 'victim', success: false })).verdict);
      // A retry of the same event id is answered from the log and counted once.
      await login(`fail-${attempt}`, { account_id: 'victim', success: false });
      await login(`ok-${attempt}`, { account_id: 'victim', success: true });
      await login(`other-${attempt}`, { account_id: 'someone-else', success: false });
    }
    expect(verdicts).toEqual(['accept', 'accept', 'accept', 'accept']);
    const fifth = await login('fail-5', { account_id: 'victim', success: false });
    expect(fifth.verdict).toBe('reject');
    expect(await featureValues(fifth.decision_id)).toEqual({ failed_logins_1h: 5 });
    const success = await login('ok-5', { account_id: 'victim', success: true });
    expect(await featureValues(success.decision_id)).toEqual({ failed_logins_1h: 5 });
    expect(success.verdict).toBe('reject');
  });

  it('counts events reported on /v1/events, once per event id', async () => {
    const events = [1, 2, 3].map((n) => ({
      type: 'login',
      id: `reported-${n}`,
      fields: { account_id: 'reported', success: false },
    }));
    expect((await node.as(tenant.apiKey, 'POST', '/v1/events', { events })).statusCode).toBe(202);
    await node.as(tenant.apiKey, 'POST', '/v1/events', { events });
    const decision = await login('reported-check', { account_id: 'reported', success: false });
    expect(await featureValues(decision.decision_id)).toEqual({ failed_logins_1h: 4 });
  });

  it('gives no value when a `by` field is absent, so on_missing applies', async () => {
    expect(
      (
        await manage('PUT', '/features/logins_per_device_1h', {
          aggregation: 'distinct',
          field: 'account_id',
          by: ['device_id'],
          window: '1h',
          event_types: ['login'],
        })
      ).statusCode,
    ).toBe(201);
    const policy = await manage('POST', '/policies/login/versions', {
      ...bruteForcePolicy,
      rules: [
        ...bruteForcePolicy.rules,
        { id: 'device-farm', when: 'features.logins_per_device_1h > 2', verdict: 'review' },
      ],
    });
    expect(policy.statusCode, policy.body).toBe(201);
    const { version } = policy.json() as { version: number };
    expect((await manage('POST', `/policies/login/versions/${version}/publish`, {})).statusCode).toBe(200);
    const without = await login('no-device', { account_id: 'a-1', success: true });
    expect(without.errors.map((error) => error.rule)).toEqual(['device-farm']);
    expect(without.verdict).toBe('review');
    for (const account of ['a-1', 'a-2', 'a-3']) {
      const decision = await login(`device-${account}`, {
        account_id: account,
        device_id: 'dev-1',
        success: true,
      });
      expect(decision.errors).toEqual([]);
      if (account === 'a-3') {
        expect(decision.verdict).toBe('review');
        expect(await featureValues(decision.decision_id)).toMatchObject({ logins_per_device_1h: 3 });
      }
    }
    // A serving policy uses the feature: it cannot be deleted, nor changed to a shape the policy cannot read.
    expectError(await manage('DELETE', '/features/logins_per_device_1h'), 409, 'invalid_state');
    expectError(
      await manage('PUT', '/features/logins_per_device_1h', {
        aggregation: 'distinct',
        field: 'account_id',
        by: ['device_id'],
        window: '1h',
        event_types: ['payment'],
      }),
      422,
      'invalid_config',
    );
  });

  it('computes a new feature from stored history (backfill)', async () => {
    const put = await manage('PUT', '/features/logins_by_ip_1h', {
      aggregation: 'count',
      by: ['account_id'],
      window: '1h',
      event_types: ['login'],
    });
    expect(put.statusCode).toBe(201);
    const ready = await untilReady(manage, '/features/logins_by_ip_1h');
    expect(ready).toMatchObject({ status: 'ready' });
    // victim: 5 failed + 5 successful logins before the feature existed, plus this one.
    const decision = await login('after-backfill', { account_id: 'victim', success: true });
    expect(await featureValues(decision.decision_id)).toMatchObject({ logins_by_ip_1h: 11 });
  });
});

describe('persistence', () => {
  let dataDir: string;
  let child: NodeProcess | undefined;
  afterEach(() => {
    if (child?.child.exitCode === null) child.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps counters across a restart of the node (rebuilt from the decision log)', async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'vigil-features-'));
    const config = loadConfig({
      VIGIL_DATA_DIR: dataDir,
      VIGIL_ADMIN_TOKEN: adminToken,
      VIGIL_LOG_LEVEL: 'silent',
    });
    const admin = (
      app: Awaited<ReturnType<typeof createNode>>['app'],
      method: 'POST' | 'PUT' | 'GET',
      url: string,
      body?: unknown,
    ) =>
      app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${adminToken}` },
        ...(body !== undefined && { payload: body as object }),
      });
    const first = await createNode(config);
    const tenantId = (
      (await admin(first.app, 'POST', '/v1/admin/tenants', { name: 'p' })).json() as { id: string }
    ).id;
    const base = `/v1/admin/tenants/${tenantId}`;
    expect((await admin(first.app, 'PUT', `${base}/event-types/login`, loginSchema)).statusCode).toBe(201);
    expect(
      (await admin(first.app, 'PUT', `${base}/features/failed_logins_1h`, failedLogins)).statusCode,
    ).toBe(201);
    const key = (await admin(first.app, 'POST', `${base}/keys`, { scopes: ['decide'] })).json() as {
      api_key: string;
    };
    const decide = (app: typeof first.app, id: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/decisions',
        headers: { authorization: `Bearer ${key.api_key}` },
        payload: { type: 'login', id, fields: { account_id: 'victim', success: false } },
      });
    for (const id of ['a', 'b', 'c']) expect((await decide(first.app, id)).statusCode).toBe(200);
    await first.close();

    const second = await createNode(config);
    const answer = (await decide(second.app, 'd')).json() as { decision_id: string };
    const stored = (await admin(second.app, 'GET', `${base}/decisions/${answer.decision_id}`)).json() as {
      features: Record<string, unknown>;
    };
    expect(stored.features).toEqual({ failed_logins_1h: 4 });
    await second.close();
  });

  it('keeps every answered decision in the counters after SIGKILL', async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'vigil-features-'));
    const env = { VIGIL_DATA_DIR: dataDir, VIGIL_ADMIN_TOKEN: adminToken };
    child = await startProcess(env);
    const send = async (url: string, token: string, method: string, path: string, body?: unknown) => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      return { status: response.status, json: (await response.json()) as Record<string, unknown> };
    };
    const tenantId = (await send(child.url, adminToken, 'POST', '/v1/admin/tenants', { name: 'k' })).json
      .id as string;
    const base = `/v1/admin/tenants/${tenantId}`;
    await send(child.url, adminToken, 'PUT', `${base}/event-types/login`, loginSchema);
    expect(
      (await send(child.url, adminToken, 'PUT', `${base}/features/failed_logins_1h`, failedLogins)).status,
    ).toBe(201);
    const apiKey = (await send(child.url, adminToken, 'POST', `${base}/keys`, { scopes: ['decide'] })).json
      .api_key as string;
    let answered = 0;
    for (let index = 0; index < 20; index++) {
      const response = await send(child.url, apiKey, 'POST', '/v1/decisions', {
        type: 'login',
        id: `k-${index}`,
        fields: { account_id: 'victim', success: false },
      });
      if (response.status === 200) answered++;
    }
    child.child.kill('SIGKILL');
    await child.exited;
    child = await startProcess(env);
    const after = await send(child.url, apiKey, 'POST', '/v1/decisions', {
      type: 'login',
      id: 'k-after',
      fields: { account_id: 'victim', success: false },
    });
    const stored = await send(
      child.url,
      adminToken,
      'GET',
      `${base}/decisions/${after.json.decision_id as string}`,
    );
    expect(stored.json.features).toEqual({ failed_logins_1h: answered + 1 });
  });
});
