import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createNode } from '../src/node.js';
import { adminToken, startTestNode, type TestNode, type TestTenant } from './harness.js';
import { startProcess } from './process-harness.js';
import { expectError } from './support.js';

interface Decision {
  decision_id: string;
  verdict: string;
  degraded: string[];
  errors: { rule: string; message: string }[];
  rules: { id: string }[];
}

interface FaultView {
  id: string;
  component: string;
  kind: string;
  rate: number;
  tenant?: string;
  latency_ms?: number;
  duration_seconds: number;
  created_at: string;
  expires_at: string;
}

interface Health {
  status: string;
  components: Record<
    string,
    { breaker: string; faults: number; local_fallback?: { tenants: number; queued: number } }
  >;
  event_loop_delay_ms: { p50: number; p99: number; max: number };
}

const policy = {
  strategy: 'worst',
  on_missing: 'review',
  rules: [
    { id: 'velocity', when: 'features.payments_1h >= 1000', verdict: 'reject' },
    { id: 'blocked', when: "in_list('blocked_accounts', event.account_id)", verdict: 'reject' },
    { id: 'disposable', when: 'has(event.email) && is_disposable_email(event.email)', verdict: 'review' },
  ],
};

let node: TestNode;
let acme: TestTenant;
let globex: TestTenant;
/** Decisions made per tenant: every one counts once in `payments_1h` (all use account u-1). */
const made = new Map<string, number>();
let eventCounter = 0;

async function configure(tenant: TestTenant): Promise<void> {
  const manage = (method: 'PUT' | 'POST', url: string, body: unknown) =>
    node.as(tenant.apiKey, method, `/v1/manage${url}`, body);
  const steps = [
    await manage('PUT', '/features/payments_1h', {
      aggregation: 'count',
      by: ['account_id'],
      window: '1h',
      event_types: ['payment'],
    }),
    await manage('PUT', '/lists/blocked_accounts', { kind: 'block', type: 'account' }),
    await manage('POST', '/lists/blocked_accounts/entries', [{ value: 'u-blocked' }]),
    await manage('POST', '/policies/payment/versions', policy),
    await manage('POST', '/policies/payment/versions/1/publish', {}),
  ];
  for (const step of steps) expect(step.statusCode, step.body).toBeLessThan(300);
}

async function decide(tenant: TestTenant, fields: Record<string, unknown> = {}): Promise<Decision> {
  const response = await node.as(tenant.apiKey, 'POST', '/v1/decisions', {
    type: 'payment',
    id: `res-${++eventCounter}`,
    fields: { account_id: 'u-1', email: 'someone@example.com', ...fields },
  });
  expect(response.statusCode, response.body).toBe(200);
  const account = fields.account_id ?? 'u-1';
  if (account === 'u-1') made.set(tenant.id, (made.get(tenant.id) ?? 0) + 1);
  return response.json() as Decision;
}

async function featureValue(tenant: TestTenant, decisionId: string): Promise<unknown> {
  const response = await node.as(tenant.apiKey, 'GET', `/v1/manage/decisions/${decisionId}`);
  expect(response.statusCode, response.body).toBe(200);
  return (response.json() as { features?: Record<string, unknown> }).features?.payments_1h;
}

async function inject(body: Record<string, unknown>): Promise<FaultView> {
  const response = await node.admin('POST', '/v1/admin/faults', body);
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as FaultView;
}

async function health(): Promise<Health> {
  const response = await node.admin('GET', '/v1/admin/health');
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Health;
}

async function metrics(): Promise<string> {
  return (await node.app.inject({ method: 'GET', url: '/metrics' })).body;
}

/** Calls `attempt` every 50 ms until it returns a value, for at most `limitMs`. */
async function until<T>(attempt: () => Promise<T | undefined>, limitMs: number, what: string): Promise<T> {
  const giveUp = Date.now() + limitMs;
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() > giveUp) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  node = await startTestNode();
  acme = await node.tenant('acme');
  globex = await node.tenant('globex');
  await configure(acme);
  await configure(globex);
});
afterAll(async () => {
  await node.close();
});

describe('fault injection API', () => {
  it('refuses bad bodies with a registered 4xx code', async () => {
    const valid = { component: 'counter_store', kind: 'outage', duration_seconds: 5 };
    for (const body of [
      { component: 'counter_store', kind: 'outage' },
      { ...valid, component: 'disk' },
      { ...valid, kind: 'slow' },
      { ...valid, duration_seconds: 0 },
      { ...valid, duration_seconds: 86_401 },
      { ...valid, duration_seconds: 1.5 },
      { ...valid, rate: 1.5 },
      { ...valid, extra: true },
      { ...valid, kind: 'latency', latency_ms: 60_001 },
    ]) {
      expectError(await node.admin('POST', '/v1/admin/faults', body), 400, 'invalid_request');
    }
    const noLatency = expectError(
      await node.admin('POST', '/v1/admin/faults', { ...valid, kind: 'latency' }),
      400,
      'invalid_request',
    );
    expect(noLatency.error.details?.map((detail) => detail.path)).toEqual(['latency_ms']);
    expectError(
      await node.admin('POST', '/v1/admin/faults', { ...valid, latency_ms: 10 }),
      400,
      'invalid_request',
    );
    expectError(
      await node.admin('POST', '/v1/admin/faults', { ...valid, tenant: 't_nobody' }),
      404,
      'not_found',
    );
    expectError(
      await node.app.inject({
        method: 'POST',
        url: '/v1/admin/faults',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        payload: '{"component":',
      }),
      400,
      'malformed_json',
    );
    expectError(await node.as(acme.apiKey, 'POST', '/v1/admin/faults', valid), 401, 'invalid_credentials');
    expectError(await node.admin('DELETE', '/v1/admin/faults/flt_unknown'), 404, 'not_found');
    expect((await node.admin('GET', '/v1/admin/faults')).json()).toEqual({ faults: [] });
  });

  it('creates, lists and deletes a fault, each change in the audit trail', async () => {
    const fault = await inject({
      component: 'external_data',
      kind: 'latency',
      latency_ms: 250,
      rate: 0.5,
      tenant: acme.id,
      duration_seconds: 120,
    });
    expect(fault).toMatchObject({
      component: 'external_data',
      kind: 'latency',
      latency_ms: 250,
      rate: 0.5,
      tenant: acme.id,
      duration_seconds: 120,
    });
    expect(fault.id).toMatch(/^flt_/);
    expect(Date.parse(fault.expires_at) - Date.parse(fault.created_at)).toBe(120_000);
    expect((await node.admin('GET', '/v1/admin/faults')).json()).toEqual({ faults: [fault] });
    expect((await node.admin('DELETE', `/v1/admin/faults/${fault.id}`)).statusCode).toBe(204);
    expectError(await node.admin('DELETE', `/v1/admin/faults/${fault.id}`), 404, 'not_found');
    expect((await node.admin('GET', '/v1/admin/faults')).json()).toEqual({ faults: [] });
    const audit = (await node.admin('GET', `/v1/admin/audit?tenant=${acme.id}`)).json() as {
      entries: { action: string; target: string; actor: string; diff: { before: unknown; after: unknown } }[];
    };
    const entries = audit.entries.filter((entry) => entry.target === fault.id);
    expect(entries.map((entry) => [entry.action, entry.actor])).toEqual([
      ['fault.delete', 'admin'],
      ['fault.create', 'admin'],
    ]);
    expect(entries[1]?.diff).toEqual({ before: null, after: fault });
  });
});

describe('counter store failure', () => {
  it("counts one tenant's decisions locally while its store is out, marked degraded, then reconciles", async () => {
    const before = await decide(acme);
    expect(before.degraded).toEqual([]);
    await inject({ component: 'counter_store', kind: 'outage', tenant: acme.id, duration_seconds: 1 });
    const during = await decide(acme);
    expect(during.degraded).toContain('features');
    // Answered with what the node counted locally since the outage: the rules still ran.
    expect(during.verdict).toBe('accept');
    expect(during.errors).toEqual([]);
    expect(await featureValue(acme, during.decision_id)).toBe(1);
    const other = await decide(globex);
    expect(other.degraded).toEqual([]);
    expect((await health()).components.counter_store).toMatchObject({
      breaker: 'closed',
      faults: 1,
      local_fallback: { tenants: 1 },
    });

    // The injection expires by itself after 1 s; the queued updates are replayed into the store.
    const recovered = await until(
      async () => {
        const decision = await decide(acme);
        return decision.degraded.length === 0 ? decision : undefined;
      },
      10_000,
      'decisions no longer degraded',
    );
    expect((await node.admin('GET', '/v1/admin/faults')).json()).toEqual({ faults: [] });
    // Every decision of the tenant counted exactly once in the store, those of the outage included.
    expect(await featureValue(acme, recovered.decision_id)).toBe(made.get(acme.id));
    expect((await health()).components.counter_store?.local_fallback).toMatchObject({
      tenants: 0,
      queued: 0,
    });
    expect(await metrics()).toMatch(
      new RegExp(`vigil_degraded_total\\{tenant="${acme.id}",component="features"\\} [1-9]`),
    );
  });

  it('opens the breaker on a store-wide outage, reports it, and closes it after a successful probe', async () => {
    const fault = await inject({ component: 'counter_store', kind: 'error', duration_seconds: 60 });
    try {
      // Tenants count locally at once; their replay attempts keep failing until the failures reach
      // the breaker's volume (10 calls in 10 s) and it opens.
      let index = 0;
      const report = await until(
        async () => {
          const decision = await decide(index++ % 2 === 0 ? acme : globex);
          expect(decision.degraded).toContain('features');
          const current = await health();
          return current.components.counter_store?.breaker === 'open' ? current : undefined;
        },
        15_000,
        'breaker open',
      );
      expect(report.status).toBe('degraded');
      expect(report.components.counter_store).toMatchObject({ breaker: 'open', faults: 1 });
      expect(report.components.list_store).toMatchObject({ breaker: 'closed', faults: 0 });
      for (const key of ['p50', 'p99', 'max'] as const)
        expect(report.event_loop_delay_ms[key]).toBeGreaterThanOrEqual(0);
      const text = await metrics();
      expect(text).toContain('vigil_circuit_breaker_state{component="counter_store"} 2');
      expect(text).toContain('vigil_circuit_breaker_state{component="list_store"} 0');
      expect(text).toContain('vigil_fault_injections_active{component="counter_store"} 1');
      expect(text).toMatch(/vigil_event_loop_delay_seconds\{stat="p99"\} [0-9.e-]+/);
      expect(text).toMatch(/vigil_counter_fallback_queue_depth [1-9]/);
    } finally {
      expect((await node.admin('DELETE', `/v1/admin/faults/${fault.id}`)).statusCode).toBe(204);
    }
    // The breaker waits its half-open delay, then one probe (the first replayed event) closes it.
    const recovered = await until(
      async () => {
        const decision = await decide(acme);
        return decision.degraded.length === 0 ? decision : undefined;
      },
      20_000,
      'breaker closed again',
    );
    const after = await health();
    expect(after.components.counter_store).toMatchObject({
      breaker: 'closed',
      local_fallback: { queued: 0 },
    });
    expect(after.status).toBe('ok');
    expect(await featureValue(acme, recovered.decision_id)).toBe(made.get(acme.id));
    const otherTenant = await decide(globex);
    expect(otherTenant.degraded).toEqual([]);
    expect(await featureValue(globex, otherTenant.decision_id)).toBe(made.get(globex.id));
  });
});

describe('list store and external data faults', () => {
  it("degrades the decisions whose rules read lists; the policy's on_missing applies", async () => {
    expect((await decide(acme, { account_id: 'u-blocked' })).verdict).toBe('reject');
    const fault = await inject({
      component: 'list_store',
      kind: 'outage',
      tenant: acme.id,
      duration_seconds: 60,
    });
    const decision = await decide(acme);
    expect(decision.degraded).toEqual(['list_store']);
    expect(decision.errors.map((error) => error.rule)).toEqual(['blocked']);
    expect(decision.errors[0]?.message).toMatch(/list_store is unavailable/);
    expect(decision.verdict).toBe('review');
    const other = await decide(globex, { account_id: 'u-blocked' });
    expect(other).toMatchObject({ verdict: 'reject', degraded: [], errors: [] });
    // Writes to the store fail as unavailable too, with Retry-After.
    const write = await node.as(acme.apiKey, 'POST', '/v1/manage/lists/blocked_accounts/entries', [
      { value: 'x' },
    ]);
    expectError(write, 503, 'component_unavailable');
    expect(write.headers['retry-after']).toBe('1');
    expect((await node.admin('DELETE', `/v1/admin/faults/${fault.id}`)).statusCode).toBe(204);
    expect(await decide(acme, { account_id: 'u-blocked' })).toMatchObject({
      verdict: 'reject',
      degraded: [],
    });
  });

  it('degrades the decisions whose rules need external data; on_missing applies', async () => {
    expect((await decide(acme)).verdict).toBe('accept');
    const fault = await inject({
      component: 'external_data',
      kind: 'error',
      tenant: acme.id,
      duration_seconds: 60,
    });
    const decision = await decide(acme);
    expect(decision.degraded).toEqual(['external_data']);
    expect(decision.errors.map((error) => error.rule)).toEqual(['disposable']);
    expect(decision.verdict).toBe('review');
    // A decision whose rules call no enrichment (no email) is not degraded.
    expect((await decide(acme, { email: undefined })).degraded).toEqual([]);
    expect((await decide(globex)).degraded).toEqual([]);
    expect((await node.admin('DELETE', `/v1/admin/faults/${fault.id}`)).statusCode).toBe(204);
    expect(await decide(acme)).toMatchObject({ verdict: 'accept', degraded: [] });
  });
});

describe('config store and decision log faults', () => {
  it('fails configuration changes as unavailable while decisions go on, and drills can still be ended', async () => {
    const fault = await inject({ component: 'config_store', kind: 'outage', duration_seconds: 60 });
    const change = await node.as(acme.apiKey, 'PUT', '/v1/manage/event-types/signup', {
      fields: { account_id: { type: 'string', required: true } },
    });
    expectError(change, 503, 'component_unavailable');
    expect((await decide(acme)).degraded).toEqual([]);
    expect((await node.admin('DELETE', `/v1/admin/faults/${fault.id}`)).statusCode).toBe(204);
    const audit = (await node.admin('GET', '/v1/admin/audit')).json() as { entries: { target: string }[] };
    expect(audit.entries.filter((entry) => entry.target === fault.id)).toHaveLength(2);
  });

  it('answers and records decisions during a decision log outage; reads of the log fail as unavailable', async () => {
    const fault = await inject({
      component: 'decision_log',
      kind: 'outage',
      tenant: acme.id,
      duration_seconds: 60,
    });
    const decision = await decide(acme);
    expect(decision.degraded).toEqual([]);
    expectError(
      await node.as(acme.apiKey, 'GET', `/v1/manage/decisions/${decision.decision_id}`),
      503,
      'component_unavailable',
    );
    expect((await node.admin('DELETE', `/v1/admin/faults/${fault.id}`)).statusCode).toBe(204);
    expect(await featureValue(acme, decision.decision_id)).toBe(made.get(acme.id));
  });
});

describe('decision log store outage', () => {
  it('spools the records of answered decisions in the journal and delivers each once when the store returns', async () => {
    const spooled = async () =>
      Number(/^vigil_decision_log_spooled_records (\d+)$/m.exec(await metrics())?.[1]);
    const fault = await inject({ component: 'decision_log', kind: 'outage', duration_seconds: 120 });
    const answered: string[] = [];
    for (let index = 0; index < 12; index += 1) {
      const decision = await decide(globex, { account_id: 'u-spool' });
      expect(decision.degraded).toEqual([]);
      answered.push(decision.decision_id);
    }
    // Batches go to the store one at a time: those answered while one is on its way are spooled
    // once it settles.
    await until(async () => ((await spooled()) >= 12 ? true : undefined), 10_000, 'the records to spool');
    expectError(
      await node.as(globex.apiKey, 'GET', '/v1/manage/decisions?entity=u-spool'),
      503,
      'component_unavailable',
    );
    expect((await node.admin('DELETE', `/v1/admin/faults/${fault.id}`)).statusCode).toBe(204);
    // The breaker may have opened on the outage: delivery resumes after its half-open probe.
    await until(async () => ((await spooled()) === 0 ? true : undefined), 30_000, 'the spool to drain');
    const search = await node.as(globex.apiKey, 'GET', '/v1/manage/decisions?entity=u-spool&limit=100');
    expect(search.statusCode, search.body).toBe(200);
    const found = (search.json() as { decisions: { decision_id: string }[] }).decisions.map(
      (decision) => decision.decision_id,
    );
    expect(found.sort()).toEqual([...answered].sort());
  }, 60_000);
});

describe('VIGIL_FAULTS', () => {
  it('starts the configured injections with the node, audited', async () => {
    const configured = await startTestNode({
      VIGIL_FAULTS: JSON.stringify([{ component: 'external_data', kind: 'error', duration_seconds: 300 }]),
    });
    try {
      const faults = (await configured.admin('GET', '/v1/admin/faults')).json() as { faults: FaultView[] };
      expect(faults.faults).toMatchObject([{ component: 'external_data', kind: 'error', rate: 1 }]);
      const audit = (await configured.admin('GET', '/v1/admin/audit')).json() as {
        entries: { action: string; actor: string; target: string }[];
      };
      expect(audit.entries).toContainEqual(
        expect.objectContaining({
          action: 'fault.create',
          actor: 'config:VIGIL_FAULTS',
          target: faults.faults[0]?.id,
        }),
      );
      const report = (await configured.admin('GET', '/v1/admin/health')).json() as Health;
      expect(report.components.external_data?.faults).toBe(1);
      expect(report.status).toBe('degraded');
    } finally {
      await configured.close();
    }
  });

  it('refuses to create a node whose VIGIL_FAULTS is not valid', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vigil-test-'));
    try {
      for (const [value, message] of [
        ['[{"component"', /VIGIL_FAULTS is not JSON/],
        ['[{"component":"counter_store","kind":"outage"}]', /VIGIL_FAULTS \[0\].*duration_seconds/],
      ] as const) {
        const config = loadConfig({
          VIGIL_DATA_DIR: dataDir,
          VIGIL_ADMIN_TOKEN: adminToken,
          VIGIL_LOG_LEVEL: 'silent',
          VIGIL_FAULTS: value,
        });
        await expect(createNode(config)).rejects.toThrow(message);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('makes the process exit at start with a message naming the setting', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vigil-test-'));
    try {
      await expect(
        startProcess({ VIGIL_DATA_DIR: dataDir, VIGIL_ADMIN_TOKEN: adminToken, VIGIL_FAULTS: 'not json' }),
      ).rejects.toThrow(/node exited early: vigil: invalid configuration: VIGIL_FAULTS is not JSON/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
