import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode, type TestTenant } from './harness.js';
import { expectError, payment, raw, signedHeaders } from './support.js';

let seq = 0;
const nextId = (prefix = 'adm') => `${prefix}-${++seq}`;

interface Decision {
  decision_id: string;
  event_id: string;
  verdict: string;
  score: number;
  rules: unknown[];
  tags: string[];
  policy_version: number | null;
  degraded: string[];
  errors: unknown[];
  latency_ms: number;
}

/** A request over real HTTP whose body is half sent, so it stays in flight until finished or aborted. */
interface HeldRequest {
  /** Sends the rest of the body; resolves with the status once answered. */
  finish(): Promise<number>;
  /** The client goes away mid-body. */
  abort(): void;
}

const held = new Set<HeldRequest>();

/** Node-wide admitted requests in flight, from `/metrics`. */
async function inflight(t: TestNode): Promise<number> {
  const response = await t.app.inject({ method: 'GET', url: '/metrics' });
  const match = /^vigil_inflight_requests (\d+)$/m.exec(response.body);
  if (match === null) throw new Error('vigil_inflight_requests is not reported');
  return Number(match[1]);
}

/** Polls `/metrics` until the node has `count` requests in flight (a wait, not a timing assertion). */
async function untilInflight(t: TestNode, count: number): Promise<void> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    if ((await inflight(t)) === count) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`in flight never reached ${count}; it is ${await inflight(t)}`);
}

function portOf(t: TestNode): number {
  return (t.app.server.address() as AddressInfo).port;
}

/**
 * Starts a bearer-key request with half of its body sent. Bearer requests are admitted before
 * their body is read, so once `vigil_inflight_requests` counts it, it holds a slot.
 */
function startHeld(t: TestNode, apiKey: string, path = '/v1/decisions', body: unknown = payment(nextId())) {
  const text = JSON.stringify(body);
  const request = httpRequest({
    host: '127.0.0.1',
    port: portOf(t),
    method: 'POST',
    path,
    agent: false,
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    },
  });
  const answered = new Promise<number>((resolve, reject) => {
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
  });
  answered.catch(() => {}); // an aborted request rejects; only `finish` awaits it
  request.write(text.slice(0, 10));
  const hold: HeldRequest = {
    finish() {
      held.delete(hold);
      request.end(text.slice(10));
      return answered;
    },
    abort() {
      held.delete(hold);
      request.destroy();
    },
  };
  held.add(hold);
  return hold;
}

/** Holds `count` slots of one tenant and waits until the node counts them. */
async function hold(t: TestNode, apiKey: string, count: number): Promise<HeldRequest[]> {
  const before = await inflight(t);
  const holds = Array.from({ length: count }, () => startHeld(t, apiKey));
  await untilInflight(t, before + count);
  return holds;
}

async function releaseAll(t: TestNode): Promise<void> {
  for (const request of [...held]) request.abort();
  await untilInflight(t, 0);
}

async function createTenant(
  t: TestNode,
  name: string,
  settings: Record<string, unknown>,
): Promise<TestTenant> {
  const tenant = await t.tenant(name);
  const patch = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, settings);
  expect(patch.statusCode, patch.body).toBe(200);
  return tenant;
}

function metric(body: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    if (wanted.every((pair) => labelText.split(',').includes(pair))) return Number(line.split(' ').at(-1));
  }
  return 0;
}

describe('per-tenant quotas', () => {
  let t: TestNode;

  beforeAll(async () => {
    t = await startTestNode();
    await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterEach(async () => {
    await releaseAll(t);
  });
  afterAll(async () => {
    await t.close();
  });

  /** Posts single decisions until one is refused; the bucket refills at most a token a second. */
  async function untilRefused(apiKey: string, attempts = 5) {
    for (let i = 0; i < attempts; i++) {
      const response = await t.as(apiKey, 'POST', '/v1/decisions', payment(nextId()));
      if (response.statusCode !== 200) return { response, served: i };
    }
    throw new Error(`no refusal in ${attempts} requests`);
  }

  it('answers 429 rate_limited with Retry-After once the token bucket is empty; another tenant is still served', async () => {
    const limited = await createTenant(t, 'limited', { rate_limit: { rps: 1, burst: 3 } });
    const other = await t.tenant('other');
    // The bucket starts full: the burst passes.
    for (let i = 0; i < 3; i++) {
      const ok = await t.as(limited.apiKey, 'POST', '/v1/decisions', payment(nextId()));
      expect(ok.statusCode, ok.body).toBe(200);
    }
    const { response: refused } = await untilRefused(limited.apiKey);
    expectError(refused, 429, 'rate_limited');
    expect(refused.headers['retry-after']).toBe('1');
    for (let i = 0; i < 20; i++) {
      const served = await t.as(other.apiKey, 'POST', '/v1/decisions', payment(nextId()));
      expect(served.statusCode, served.body).toBe(200);
    }
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(
      metric(metrics, 'vigil_admission_rejections_total', { tenant: limited.id, reason: 'rate_limited' }),
    ).toBe(1);
    expect(
      metric(metrics, 'vigil_admission_rejections_total', { tenant: other.id, reason: 'rate_limited' }),
    ).toBe(0);
  });

  it('charges a batch one token per event, into debt, and tells how long the debt takes to refill', async () => {
    const tenant = await createTenant(t, 'batcher', { rate_limit: { rps: 1, burst: 5 } });
    // A full bucket lets a batch larger than itself through: 300 events leave 295 tokens of debt.
    const events = Array.from({ length: 300 }, () => payment(nextId()));
    const batch = await t.as(tenant.apiKey, 'POST', '/v1/events', { events });
    expect(batch.statusCode, batch.body).toBe(202);
    expect(batch.json()).toMatchObject({ accepted: 300 });
    for (const [path, body] of [
      ['/v1/decisions', payment(nextId())],
      ['/v1/decisions/batch', { events: [payment(nextId())] }],
      ['/v1/events', { events: [payment(nextId())] }],
      ['/v1/feedback', { event_id: 'x', label: 'fraud' }],
    ] as const) {
      const refused = await t.as(tenant.apiKey, 'POST', path, body);
      expectError(refused, 429, 'rate_limited');
      // 296 tokens needed at 1 a second, less the seconds this test has run.
      const retryAfter = Number(refused.headers['retry-after']);
      expect(retryAfter, path).toBeLessThanOrEqual(296);
      expect(retryAfter, path).toBeGreaterThan(250);
    }
  });

  it('refuses a batch the bucket cannot cover once its size is known, taking no tokens', async () => {
    const tenant = await createTenant(t, 'small-batches', { rate_limit: { rps: 1, burst: 10 } });
    const batchOf = (size: number) => ({ events: Array.from({ length: size }, () => payment(nextId())) });
    expect((await t.as(tenant.apiKey, 'POST', '/v1/events', batchOf(8))).statusCode).toBe(202);
    // About two tokens left: five are refused...
    const refused = await t.as(tenant.apiKey, 'POST', '/v1/decisions/batch', batchOf(5));
    expectError(refused, 429, 'rate_limited');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(3);
    // ...and took nothing: the two left still pass.
    expect((await t.as(tenant.apiKey, 'POST', '/v1/decisions/batch', batchOf(2))).statusCode).toBe(200);
  });

  it('applies a changed quota to the next request, with no restart', async () => {
    const tenant = await createTenant(t, 'changing', { rate_limit: { rps: 1, burst: 1 } });
    expectError((await untilRefused(tenant.apiKey)).response, 429, 'rate_limited');
    const patch = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, {
      rate_limit: { rps: 1_000_000, burst: 1_000_000 },
    });
    expect(patch.json()).toMatchObject({ rate_limit: { rps: 1_000_000, burst: 1_000_000 } });
    for (let i = 0; i < 10; i++) {
      expect((await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()))).statusCode).toBe(200);
    }
    await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { rate_limit: { rps: 1, burst: 1 } });
    expectError((await untilRefused(tenant.apiKey)).response, 429, 'rate_limited');
  });

  it('answers 429 too_many_concurrent over max_concurrency, for bearer and signed requests alike', async () => {
    const tenant = await createTenant(t, 'narrow', { max_concurrency: 2 });
    const other = await t.tenant('wide');
    const holds = await hold(t, tenant.apiKey, 2);
    const refused = await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()));
    expectError(refused, 429, 'too_many_concurrent');
    expect(refused.headers['retry-after']).toBe('1');
    const body = JSON.stringify(payment(nextId()));
    const signed = await raw(
      t,
      'POST',
      '/v1/decisions',
      { 'content-type': 'application/json', ...signedHeaders(tenant, body) },
      body,
    );
    expectError(signed, 429, 'too_many_concurrent');
    expect((await t.as(other.apiKey, 'POST', '/v1/decisions', payment(nextId()))).statusCode).toBe(200);

    expect(await holds[0]?.finish()).toBe(200);
    expect((await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()))).statusCode).toBe(200);
  });

  it('leaks no slot after errors, aborts and completed requests: the tenant still gets its full concurrency', async () => {
    const tenant = await createTenant(t, 'leaky', { max_concurrency: 3 });
    const key = tenant.apiKey;
    for (let round = 0; round < 10; round++) {
      // Errors after admission: invalid events, malformed JSON, unknown type, bad feedback, a too large body.
      expectError(
        await t.as(key, 'POST', '/v1/decisions', { type: 'payment', id: nextId() }),
        422,
        'invalid_event',
      );
      expectError(
        await raw(
          t,
          'POST',
          '/v1/decisions',
          { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          '{',
        ),
        400,
        'malformed_json',
      );
      expectError(
        await t.as(key, 'POST', '/v1/decisions', { type: 'nope', id: nextId(), fields: {} }),
        422,
        'unknown_event_type',
      );
      expectError(
        await t.as(key, 'POST', '/v1/feedback', { event_id: nextId(), label: 'fraud' }),
        404,
        'event_not_found',
      );
      expectError(
        await t.as(key, 'POST', '/v1/decisions', payment(nextId(), { note: 'x'.repeat(70_000) })),
        413,
        'payload_too_large',
      );
      // Aborts mid-body, and aborts racing the answer: released once either way.
      const aborted = [startHeld(t, key), startHeld(t, key)];
      await untilInflight(t, 2);
      for (const request of aborted) request.abort();
      const racing = startHeld(t, key);
      await untilInflight(t, 1);
      const answer = racing.finish();
      racing.abort();
      await answer.catch(() => {});
      await untilInflight(t, 0);
    }
    const holds = await hold(t, key, 3);
    expectError(await t.as(key, 'POST', '/v1/decisions', payment(nextId())), 429, 'too_many_concurrent');
    expect(await Promise.all(holds.map((request) => request.finish()))).toEqual([200, 200, 200]);
    expect(await inflight(t)).toBe(0);
  });

  it('is not applied to the control plane', async () => {
    const tenant = await createTenant(t, 'manager', { rate_limit: { rps: 1, burst: 1 }, max_concurrency: 1 });
    await hold(t, tenant.apiKey, 1);
    for (let i = 0; i < 5; i++) {
      expect((await t.as(tenant.apiKey, 'GET', '/v1/manage/event-types')).statusCode).toBe(200);
    }
  });
});

describe('node overload: shedding', () => {
  let t: TestNode;
  let flood: TestTenant;
  let quiet: TestTenant;
  let strict: TestTenant;
  let failOpen: TestTenant;

  beforeAll(async () => {
    // A fixed node limit of 10: the adaptive limit is pinned by its bounds.
    t = await startTestNode({ VIGIL_CONCURRENCY_LIMIT_MIN: '10', VIGIL_CONCURRENCY_LIMIT_MAX: '10' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    flood = await t.tenant('flood');
    quiet = await t.tenant('quiet');
    strict = await t.tenant('strict');
    failOpen = await createTenant(t, 'fail-open', { overload_fallback: { verdict: 'review' } });
  });
  afterEach(async () => {
    await releaseAll(t);
  });
  afterAll(async () => {
    await t.close();
  });

  it('reports its limit', async () => {
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^vigil_concurrency_limit 10$/m);
  });

  it('sheds a tenant over its fair share before a quiet one', async () => {
    await hold(t, flood.apiKey, 8);
    const shed = await t.as(flood.apiKey, 'POST', '/v1/decisions', payment(nextId()));
    expectError(shed, 503, 'overloaded');
    expect(shed.headers['retry-after']).toBe('1');
    for (let i = 0; i < 5; i++) {
      const served = await t.as(quiet.apiKey, 'POST', '/v1/decisions', payment(nextId()));
      expect(served.statusCode, served.body).toBe(200);
    }
  });

  it('answers 503 overloaded with Retry-After at the node limit, on every data-plane route', async () => {
    await hold(t, flood.apiKey, 8);
    await hold(t, quiet.apiKey, 2);
    const refused = await t.as(strict.apiKey, 'POST', '/v1/decisions', payment(nextId()));
    expectError(refused, 503, 'overloaded');
    expect(refused.headers['retry-after']).toBe('1');
    expectError(
      await t.as(strict.apiKey, 'POST', '/v1/decisions/batch', { events: [payment(nextId())] }),
      503,
      'overloaded',
    );
    expectError(
      await t.as(strict.apiKey, 'POST', '/v1/events', { events: [payment(nextId())] }),
      503,
      'overloaded',
    );
    expectError(
      await t.as(strict.apiKey, 'POST', '/v1/feedback', { event_id: 'x', label: 'legit' }),
      503,
      'overloaded',
    );
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metric(metrics, 'vigil_shed_total', { tenant: strict.id, outcome: 'rejected' })).toBe(4);
    expect(
      metric(metrics, 'vigil_admission_rejections_total', { tenant: strict.id, reason: 'overloaded' }),
    ).toBe(4);

    await releaseAll(t);
    expect((await t.as(strict.apiKey, 'POST', '/v1/decisions', payment(nextId()))).statusCode).toBe(200);
  });

  it("answers a fail-open tenant's shed decisions with its fallback, unlogged, and decides a retry normally", async () => {
    await hold(t, flood.apiKey, 8);
    await hold(t, quiet.apiKey, 2);
    const eventId = nextId('shed');
    const shed = await t.as(failOpen.apiKey, 'POST', '/v1/decisions', payment(eventId));
    expect(shed.statusCode, shed.body).toBe(200);
    const decision = shed.json() as Decision;
    expect(decision).toEqual({
      decision_id: expect.any(String),
      event_id: eventId,
      verdict: 'review',
      score: 0,
      rules: [],
      tags: [],
      policy_version: null,
      degraded: ['shed'],
      errors: [],
      latency_ms: expect.any(Number),
    });
    const again = (await t.as(failOpen.apiKey, 'POST', '/v1/decisions', payment(eventId))).json() as Decision;
    expect(again.degraded).toEqual(['shed']);
    expect(again.decision_id).not.toBe(decision.decision_id);

    const batch = await t.as(failOpen.apiKey, 'POST', '/v1/decisions/batch', {
      events: [payment(nextId('shed')), payment(nextId('shed'))],
    });
    expect(batch.statusCode, batch.body).toBe(200);
    const decisions = (batch.json() as { decisions: Decision[] }).decisions;
    expect(decisions.map((d) => [d.verdict, d.degraded])).toEqual([
      ['review', ['shed']],
      ['review', ['shed']],
    ]);
    // Still validated first; events and feedback have no fallback.
    expectError(
      await t.as(failOpen.apiKey, 'POST', '/v1/decisions', { type: 'payment' }),
      422,
      'invalid_event',
    );
    expectError(
      await t.as(failOpen.apiKey, 'POST', '/v1/events', { events: [payment(nextId())] }),
      503,
      'overloaded',
    );
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metric(metrics, 'vigil_shed_total', { tenant: failOpen.id, outcome: 'fallback' })).toBe(3);
    expect(metric(metrics, 'vigil_shed_total', { tenant: failOpen.id, outcome: 'rejected' })).toBe(1);

    // Not in the decision log.
    const lookup = await t.as(failOpen.apiKey, 'GET', `/v1/manage/decisions/${decision.decision_id}`);
    expectError(lookup, 404, 'not_found');

    await releaseAll(t);
    const retry = await t.as(failOpen.apiKey, 'POST', '/v1/decisions', payment(eventId));
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.headers['idempotent-replay']).toBeUndefined();
    const decided = retry.json() as Decision;
    expect(decided.degraded).not.toContain('shed');
    expect(decided.verdict).toBe('accept');
    expect(
      (await t.as(failOpen.apiKey, 'GET', `/v1/manage/decisions/${decided.decision_id}`)).statusCode,
    ).toBe(200);
  });

  it('answers 503 again once a tenant removes its fallback', async () => {
    const tenant = await createTenant(t, 'changes-mind', { overload_fallback: { verdict: 'accept' } });
    await hold(t, flood.apiKey, 8);
    await hold(t, quiet.apiKey, 2);
    expect((await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()))).statusCode).toBe(200);
    const patch = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { overload_fallback: null });
    expect(patch.json()).toMatchObject({ overload_fallback: null });
    expectError(await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId())), 503, 'overloaded');
  });
});

describe('node overload: event-loop lag', () => {
  let t: TestNode;
  let tenant: TestTenant;

  beforeAll(async () => {
    t = await startTestNode({ VIGIL_SHED_LAG_MS: '20' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    tenant = await t.tenant('lagging');
  });
  afterAll(async () => {
    await t.close();
  });

  it('sheds new requests with 503 while the loop runs late with requests waiting, and serves again once it is on time', async () => {
    // A lone request after a stall is served: the stall was the node's own work, not a queue.
    const stall = performance.now() + 120;
    while (performance.now() < stall) {
      // busy
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    const lone = await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()));
    expect(lone.statusCode, lone.body).toBe(200);
    // The loop on time again (the lag falls by a third per 10 ms tick) before the next requests.
    await new Promise((resolve) => setTimeout(resolve, 150));
    // With requests in flight, a late loop sheds. Hold the loop as a burst of work would; the lag
    // timer fires late as soon as it can.
    await hold(t, tenant.apiKey, 8);
    const until = performance.now() + 120;
    while (performance.now() < until) {
      // busy
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    const shed = await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()));
    expectError(shed, 503, 'overloaded');
    expect(shed.headers['retry-after']).toBe('1');
    await releaseAll(t);
    const deadline = Date.now() + 10_000;
    let served = await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()));
    while (served.statusCode !== 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      served = await t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(nextId()));
    }
    expect(served.statusCode, served.body).toBe(200);
  });
});

describe('tenant overload_fallback setting', () => {
  let t: TestNode;

  beforeAll(async () => {
    t = await startTestNode();
  });
  afterAll(async () => {
    await t.close();
  });

  it('is created, read, changed and cleared through the control plane, and validated', async () => {
    const create = await t.admin('POST', '/v1/admin/tenants', {
      name: 'open',
      overload_fallback: { verdict: 'accept' },
    });
    expect(create.statusCode, create.body).toBe(201);
    const tenant = create.json() as { id: string; overload_fallback: unknown };
    expect(tenant.overload_fallback).toEqual({ verdict: 'accept' });
    expect((await t.admin('GET', `/v1/admin/tenants/${tenant.id}`)).json()).toMatchObject({
      overload_fallback: { verdict: 'accept' },
    });
    const patched = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, {
      overload_fallback: { verdict: 'reject' },
    });
    expect(patched.json()).toMatchObject({ overload_fallback: { verdict: 'reject' } });
    const cleared = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { overload_fallback: null });
    expect(cleared.json()).toMatchObject({ overload_fallback: null });
    const plain = (await t.admin('POST', '/v1/admin/tenants', { name: 'plain' })).json();
    expect(plain).toMatchObject({ overload_fallback: null });

    for (const bad of [{ verdict: 'maybe' }, { verdict: 'accept', extra: 1 }, {}, 'accept']) {
      expectError(
        await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { overload_fallback: bad }),
        422,
        'invalid_config',
      );
    }
  });
});
