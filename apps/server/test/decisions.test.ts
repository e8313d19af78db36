import { join } from 'node:path';
import { SqliteDecisionLog } from '@vigil/store-sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode, type TestTenant } from './harness.js';
import { expectError, payment } from './support.js';

let t: TestNode;
let acme: TestTenant;
let seq = 0;
const nextId = (prefix = 'dec') => `${prefix}-${++seq}`;

beforeAll(async () => {
  t = await startTestNode();
  acme = await t.tenant('acme');
});
afterAll(async () => {
  await t.close();
});

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

interface Summary {
  decision_id: string;
  kind: string;
  event_id: string;
  event_type: string;
  verdict: string | null;
  created_at: string;
}

interface Page {
  decisions: Summary[];
  next_cursor: string | null;
}

async function decide(event: Record<string, unknown>, apiKey = acme.apiKey): Promise<Decision> {
  const response = await t.as(apiKey, 'POST', '/v1/decisions', event);
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Decision;
}

async function search(query: string, apiKey = acme.apiKey): Promise<Page> {
  const response = await t.as(apiKey, 'GET', `/v1/manage/decisions?${query}`);
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Page;
}

/** Follows `next_cursor` to the end; returns every page. */
async function walk(query: string): Promise<Page[]> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const page = await search(`${query}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
    pages.push(page);
    cursor = page.next_cursor;
    expect(pages.length).toBeLessThan(100);
  } while (cursor !== null);
  return pages;
}

/** Waits until the wall clock has moved on by at least `ms`, so records fall on either side of a bound. */
async function clockPasses(ms: number): Promise<void> {
  const start = Date.now();
  while (Date.now() - start <= ms) await new Promise((resolve) => setTimeout(resolve, ms));
}

describe('POST /v1/decisions', () => {
  it('accepts with no published policy and answers every field of the contract', async () => {
    const id = nextId();
    const response = await t.as(acme.apiKey, 'POST', '/v1/decisions', {
      type: 'payment',
      id,
      timestamp: '2026-11-24T12:00:00Z',
      fields: { account_id: 'u-1', amount: 129.5, ip: '203.0.113.7' },
      timeout_ms: 50,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['idempotent-replay']).toBeUndefined();
    expect(response.headers['x-request-id']).toEqual(expect.any(String));
    const decision = response.json() as Decision;
    expect(Object.keys(decision).sort()).toEqual(
      [
        'decision_id',
        'event_id',
        'verdict',
        'score',
        'rules',
        'tags',
        'policy_version',
        'degraded',
        'errors',
        'latency_ms',
      ].sort(),
    );
    expect(decision).toEqual({
      decision_id: expect.any(String),
      event_id: id,
      verdict: 'accept',
      score: 0,
      rules: [],
      tags: [],
      policy_version: null,
      degraded: [],
      errors: [],
      latency_ms: expect.any(Number),
    });
    expect(decision.decision_id.length).toBeGreaterThan(0);
    expect(decision.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('returns the first decision for a repeated event id, marked as a replay, and stores it once', async () => {
    const id = nextId();
    const account = `idem-${id}`;
    const first = await t.as(acme.apiKey, 'POST', '/v1/decisions', payment(id, { account_id: account }));
    expect(first.statusCode).toBe(200);
    expect(first.headers['idempotent-replay']).toBeUndefined();
    // A retry with other fields still gets the first answer.
    const second = await t.as(
      acme.apiKey,
      'POST',
      '/v1/decisions',
      payment(id, { account_id: account, amount: 9 }),
    );
    expect(second.statusCode).toBe(200);
    expect(second.headers['idempotent-replay']).toBe('true');
    expect(second.json()).toEqual(first.json());
    const stored = await search(`entity=${account}`);
    expect(stored.decisions.map((d) => d.decision_id)).toEqual([(first.json() as Decision).decision_id]);
  });

  it('yields one decision for 10 concurrent requests with the same event id', async () => {
    const id = nextId();
    const account = `concurrent-${id}`;
    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        t.as(acme.apiKey, 'POST', '/v1/decisions', payment(id, { account_id: account })),
      ),
    );
    for (const response of responses) expect(response.statusCode, response.body).toBe(200);
    const ids = new Set(responses.map((response) => (response.json() as Decision).decision_id));
    expect(ids.size).toBe(1);
    expect(responses.filter((response) => response.headers['idempotent-replay'] === undefined)).toHaveLength(
      1,
    );
    const stored = await search(`entity=${account}`);
    expect(stored.decisions.map((d) => d.decision_id)).toEqual([...ids]);
  });

  it('keeps event ids apart between a decision and a reported event', async () => {
    const id = nextId();
    await decide(payment(id));
    const reported = await t.as(acme.apiKey, 'POST', '/v1/events', { events: [payment(id)] });
    expect(reported.json()).toMatchObject({ accepted: 1, duplicates: 0 });
  });
});

describe('POST /v1/decisions/batch', () => {
  it('answers one result per event, in order, with per-item errors', async () => {
    const ids = Array.from({ length: 6 }, () => nextId('batch'));
    const events = [
      payment(ids[0] as string),
      { type: 'payment', id: ids[1], fields: { account_id: 'u', amount: 'lots' } },
      payment(ids[2] as string),
      { type: 'withdrawal', id: ids[3], fields: {} },
      payment(ids[4] as string),
      payment(ids[0] as string),
    ];
    const response = await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', { events, timeout_ms: 100 });
    expect(response.statusCode, response.body).toBe(200);
    const { decisions } = response.json() as {
      decisions: (Partial<Decision> & {
        event_id: string;
        error?: { code: string; details?: { path: string }[] };
      })[];
    };
    expect(decisions.map((item) => item.event_id)).toEqual([ids[0], ids[1], ids[2], ids[3], ids[4], ids[0]]);
    expect(decisions[0]).toMatchObject({ verdict: 'accept', decision_id: expect.any(String) });
    expect(decisions[1]?.error?.code).toBe('invalid_event');
    expect(decisions[1]?.error?.details?.map((detail) => detail.path)).toEqual(['fields.amount']);
    expect(decisions[1]?.decision_id).toBeUndefined();
    expect(decisions[2]).toMatchObject({ verdict: 'accept' });
    expect(decisions[3]?.error?.code).toBe('unknown_event_type');
    expect(decisions[4]).toMatchObject({ verdict: 'accept' });
    // The same id twice in one batch is one decision.
    expect(decisions[5]?.decision_id).toBe(decisions[0]?.decision_id);
  });

  it('keeps the order of 50 events', async () => {
    const ids = Array.from({ length: 50 }, () => nextId('order'));
    const response = await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', {
      events: ids.map((id) => payment(id)),
    });
    expect(response.statusCode).toBe(200);
    expect((response.json() as { decisions: Decision[] }).decisions.map((d) => d.event_id)).toEqual(ids);
  });

  it('replays a decision made earlier by /v1/decisions', async () => {
    const id = nextId();
    const single = await decide(payment(id));
    const response = await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', { events: [payment(id)] });
    expect((response.json() as { decisions: Decision[] }).decisions[0]).toEqual(single);
  });
});

describe('POST /v1/events', () => {
  it('answers 202 with counts, and a retried id is a duplicate', async () => {
    const ids = [nextId('evt'), nextId('evt')];
    const body = { events: ids.map((id) => payment(id)) };
    const first = await t.as(acme.apiKey, 'POST', '/v1/events', body);
    expect(first.statusCode).toBe(202);
    expect(first.json()).toEqual({
      accepted: 2,
      duplicates: 0,
      rejected: 0,
      results: ids.map((id) => ({ event_id: id, status: 'accepted' })),
    });
    const retry = await t.as(acme.apiKey, 'POST', '/v1/events', body);
    expect(retry.statusCode).toBe(202);
    expect(retry.json()).toMatchObject({ accepted: 0, duplicates: 2, rejected: 0 });
  });

  it('counts the same id twice in one request once', async () => {
    const id = nextId('evt');
    const response = await t.as(acme.apiKey, 'POST', '/v1/events', { events: [payment(id), payment(id)] });
    expect(response.json()).toMatchObject({ accepted: 1, duplicates: 1 });
  });

  it('stores reported events without a verdict', async () => {
    const id = nextId('evt');
    const account = `reported-${id}`;
    await t.as(acme.apiKey, 'POST', '/v1/events', { events: [payment(id, { account_id: account })] });
    const page = await search(`entity=${account}`);
    expect(page.decisions).toHaveLength(1);
    expect(page.decisions[0]).toMatchObject({ kind: 'event', event_id: id, verdict: null });
  });
});

describe('POST /v1/feedback', () => {
  it('answers 404 event_not_found for an unknown event', async () => {
    const response = await t.as(acme.apiKey, 'POST', '/v1/feedback', {
      event_id: 'never-seen',
      label: 'fraud',
    });
    expectError(response, 404, 'event_not_found');
  });

  it('answers 202 for a decided event, and the label shows on the decision', async () => {
    const id = nextId();
    const decision = await decide(payment(id));
    const response = await t.as(acme.apiKey, 'POST', '/v1/feedback', {
      event_id: id,
      label: 'fraud',
      source: 'chargeback',
      note: 'card reported stolen',
    });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ event_id: id, label: 'fraud' });
    await t.as(acme.apiKey, 'POST', '/v1/feedback', { event_id: id, label: 'legit' });
    const detail = await t.as(acme.apiKey, 'GET', `/v1/manage/decisions/${decision.decision_id}`);
    expect(detail.statusCode).toBe(200);
    expect((detail.json() as { feedback: unknown[] }).feedback).toEqual([
      { label: 'fraud', source: 'chargeback', note: 'card reported stolen', at: expect.any(String) },
      { label: 'legit', source: null, note: null, at: expect.any(String) },
    ]);
  });

  it('answers 202 for an event reported without a decision', async () => {
    const id = nextId('evt');
    await t.as(acme.apiKey, 'POST', '/v1/events', { events: [payment(id)] });
    const response = await t.as(acme.apiKey, 'POST', '/v1/feedback', { event_id: id, label: 'legit' });
    expect(response.statusCode).toBe(202);
  });

  it('refuses an unknown label', async () => {
    const id = nextId();
    await decide(payment(id));
    const response = await t.as(acme.apiKey, 'POST', '/v1/feedback', { event_id: id, label: 'maybe' });
    expect(response.statusCode).toBeGreaterThanOrEqual(400);
    expect(response.statusCode).toBeLessThan(500);
  });
});

describe('decision search', () => {
  it('finds decisions by account id and by IP', async () => {
    const account = `search-${nextId()}`;
    const ip = '198.51.100.77';
    const a = await decide(payment(nextId(), { account_id: account, ip }));
    const b = await decide(payment(nextId(), { account_id: account }));
    const c = await decide(payment(nextId(), { account_id: `${account}-other`, ip }));
    expect((await search(`entity=${account}`)).decisions.map((d) => d.decision_id)).toEqual([
      b.decision_id,
      a.decision_id,
    ]);
    const byIp = (await search(`entity=${ip}`)).decisions.map((d) => d.decision_id);
    expect(byIp).toEqual([c.decision_id, a.decision_id]);
    expect((await search(`entity=${account}-nobody`)).decisions).toEqual([]);
  });

  it('filters by verdict', async () => {
    const account = `verdict-${nextId()}`;
    const decision = await decide(payment(nextId(), { account_id: account }));
    const accepted = await search(`entity=${account}&verdict=accept`);
    expect(accepted.decisions.map((d) => d.decision_id)).toEqual([decision.decision_id]);
    expect(accepted.decisions[0]).toMatchObject({
      verdict: 'accept',
      event_type: 'payment',
      kind: 'decision',
    });
    for (const verdict of ['reject', 'review', 'challenge']) {
      expect((await search(`entity=${account}&verdict=${verdict}`)).decisions).toEqual([]);
    }
  });

  it('filters by time range: from inclusive, to exclusive', async () => {
    const account = `time-${nextId()}`;
    const before = [await decide(payment(nextId(), { account_id: account }))];
    before.push(await decide(payment(nextId(), { account_id: account })));
    await clockPasses(3);
    const middle = new Date().toISOString();
    await clockPasses(3);
    const after = [await decide(payment(nextId(), { account_id: account }))];
    after.push(await decide(payment(nextId(), { account_id: account })));
    const ids = (page: Page) => page.decisions.map((d) => d.decision_id).sort();
    const sorted = (list: Decision[]) => list.map((d) => d.decision_id).sort();
    expect(ids(await search(`entity=${account}&from=${middle}`))).toEqual(sorted(after));
    expect(ids(await search(`entity=${account}&to=${middle}`))).toEqual(sorted(before));
    expect(ids(await search(`from=${middle}&verdict=accept`))).toEqual(expect.arrayContaining(sorted(after)));
    expect(ids(await search(`from=${middle}`))).not.toEqual(
      expect.arrayContaining(sorted(before).slice(0, 1)),
    );
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await search(`entity=${account}&from=${future}`)).decisions).toEqual([]);
    expect((await search(`entity=${account}&from=${middle}&to=${middle}`)).decisions).toEqual([]);
    const created = (await search(`entity=${account}`)).decisions.map((d) => Date.parse(d.created_at));
    expect(created.every((at) => Number.isFinite(at))).toBe(true);
  });

  it('walks every page with limit 10: no duplicates, no gaps, newest first', async () => {
    const account = `pages-${nextId()}`;
    const created: string[] = [];
    for (let i = 0; i < 25; i++)
      created.push((await decide(payment(nextId(), { account_id: account }))).decision_id);
    const pages = await walk(`entity=${account}&limit=10`);
    expect(pages.map((page) => page.decisions.length)).toEqual([10, 10, 5]);
    const seen = pages.flatMap((page) => page.decisions.map((d) => d.decision_id));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...created].reverse());
  });

  it('walks every page with the default page size, also without an entity filter', async () => {
    const fresh = await t.tenant('pagination');
    const created: string[] = [];
    const events = Array.from({ length: 120 }, (_, i) => payment(`page-${i}`, { account_id: 'p' }));
    const response = await t.as(fresh.apiKey, 'POST', '/v1/decisions/batch', { events });
    for (const item of (response.json() as { decisions: Decision[] }).decisions)
      created.push(item.decision_id);
    for (const query of ['entity=p', 'verdict=accept']) {
      const pages: Page[] = [];
      let cursor: string | null = null;
      do {
        const page = await search(`${query}${cursor === null ? '' : `&cursor=${cursor}`}`, fresh.apiKey);
        pages.push(page);
        cursor = page.next_cursor;
      } while (cursor !== null && pages.length < 10);
      expect(
        pages.map((page) => page.decisions.length),
        query,
      ).toEqual([50, 50, 20]);
      const seen = pages.flatMap((page) => page.decisions.map((d) => d.decision_id));
      expect(new Set(seen).size).toBe(120);
      expect(new Set(seen)).toEqual(new Set(created));
      // Newest first: `created_at` never increases along the walk.
      const times = pages.flatMap((page) => page.decisions.map((d) => Date.parse(d.created_at)));
      expect(times).toEqual([...times].sort((x, y) => y - x));
    }
  });

  // Ajv runs with coerceTypes: false for every part of the request, so integer query and path
  // parameters (which are always strings on the wire) are refused with 400 invalid_request.
  it('accepts numeric query and path parameters (limit, before, policy :version)', async () => {
    const wrong: string[] = [];
    for (const url of [
      '/v1/manage/policies/payment/versions/1',
      `/v1/admin/tenants/${acme.id}/policies/payment/versions/1`,
      '/v1/manage/decisions?limit=2',
      `/v1/admin/tenants/${acme.id}/decisions?limit=2`,
      '/v1/manage/audit?limit=2',
      '/v1/manage/audit?before=1000000',
      '/v1/admin/audit?limit=2',
    ]) {
      const response = url.startsWith('/v1/admin')
        ? await t.admin('GET', url)
        : await t.as(acme.apiKey, 'GET', url);
      // A policy version that does not exist is a 404; what must not happen is a 400 for the number.
      if (response.statusCode !== 200 && response.statusCode !== 404)
        wrong.push(`${url} -> ${response.statusCode} ${response.body}`);
    }
    expect(wrong).toEqual([]);
  });

  it.each(['garbage', 'MTIz', 'Zm9vOmJhcg', '%00', 'x'.repeat(200)])(
    'answers 400 invalid_request for the cursor %s',
    async (cursor) => {
      const response = await t.as(acme.apiKey, 'GET', `/v1/manage/decisions?cursor=${cursor}`);
      expectError(response, 400, 'invalid_request');
    },
  );
});

describe('one decision', () => {
  it('returns the event and the decision data on the manage and admin routes', async () => {
    const id = nextId();
    const event = {
      type: 'payment',
      id,
      timestamp: '2026-11-24T12:00:00Z',
      fields: { account_id: 'u-77', amount: 10, channel: 'app', tags: ['x'] },
    };
    const decision = await decide(event);
    const manage = await t.as(acme.apiKey, 'GET', `/v1/manage/decisions/${decision.decision_id}`);
    expect(manage.statusCode).toBe(200);
    const body = manage.json() as Record<string, unknown>;
    expect(body).toMatchObject({
      decision_id: decision.decision_id,
      kind: 'decision',
      event_id: id,
      event_type: 'payment',
      verdict: 'accept',
      policy_version: null,
      event: { type: 'payment', id, timestamp: '2026-11-24T12:00:00Z', fields: event.fields },
      response: decision,
      feedback: [],
      created_at: expect.any(String),
    });
    const admin = await t.admin('GET', `/v1/admin/tenants/${acme.id}/decisions/${decision.decision_id}`);
    expect(admin.statusCode).toBe(200);
    expect(admin.json()).toEqual(body);
    const adminSearch = await t.admin('GET', `/v1/admin/tenants/${acme.id}/decisions?entity=u-77`);
    expect(adminSearch.statusCode).toBe(200);
    expect((adminSearch.json() as Page).decisions.map((d) => d.decision_id)).toEqual([decision.decision_id]);
  });

  it('stores the server time as the event timestamp when the client sends none', async () => {
    const before = Date.now();
    const decision = await decide(payment(nextId()));
    const detail = (
      await t.as(acme.apiKey, 'GET', `/v1/manage/decisions/${decision.decision_id}`)
    ).json() as {
      event: { timestamp: string };
    };
    expect(Date.parse(detail.event.timestamp)).toBeGreaterThanOrEqual(before - 1000);
  });

  it('answers 404 not_found for an unknown decision id, and for an unknown tenant on the admin route', async () => {
    expectError(await t.as(acme.apiKey, 'GET', '/v1/manage/decisions/nope'), 404, 'not_found');
    expectError(await t.admin('GET', `/v1/admin/tenants/${acme.id}/decisions/nope`), 404, 'not_found');
    expectError(await t.admin('GET', '/v1/admin/tenants/t_nope/decisions'), 404, 'not_found');
  });
});

describe('tenants', () => {
  it('creates, lists, reads, changes and deletes a tenant; its keys and data go with it', async () => {
    const create = await t.admin('POST', '/v1/admin/tenants', {
      name: 'Globex',
      rate_limit: { rps: 100, burst: 200 },
      max_concurrency: 8,
    });
    expect(create.statusCode).toBe(201);
    const tenant = create.json() as { id: string };
    expect(tenant).toMatchObject({
      id: expect.any(String),
      name: 'Globex',
      rate_limit: { rps: 100, burst: 200 },
      max_concurrency: 8,
      created_at: expect.any(String),
    });

    const list = (await t.admin('GET', '/v1/admin/tenants')).json() as { tenants: { id: string }[] };
    expect(list.tenants.map((x) => x.id)).toContain(tenant.id);
    expect((await t.admin('GET', `/v1/admin/tenants/${tenant.id}`)).json()).toEqual(tenant);

    const patch = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, {
      name: 'Globex Corp',
      max_concurrency: 4,
    });
    expect(patch.statusCode).toBe(200);
    expect(patch.json()).toMatchObject({ id: tenant.id, name: 'Globex Corp', max_concurrency: 4 });
    expect((await t.admin('GET', `/v1/admin/tenants/${tenant.id}`)).json()).toMatchObject({
      name: 'Globex Corp',
    });
    expectError(await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { name: 7 }), 422, 'invalid_config');
    expectError(await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { id: 'x' }), 422, 'invalid_config');

    const key = (
      await t.admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { scopes: ['decide', 'manage'] })
    ).json() as { api_key: string; key_id: string };
    const put = await t.admin('PUT', `/v1/admin/tenants/${tenant.id}/event-types/payment`, {
      fields: { account_id: { type: 'string', required: true } },
    });
    expect(put.statusCode).toBe(201);
    const decision = await decide(payment('globex-1', { account_id: 'g-1' }), key.api_key);
    await t.as(key.api_key, 'POST', '/v1/events', { events: [payment('globex-2', { account_id: 'g-1' })] });
    await t.as(key.api_key, 'POST', '/v1/feedback', { event_id: 'globex-1', label: 'fraud' });

    const remove = await t.admin('DELETE', `/v1/admin/tenants/${tenant.id}`);
    expect(remove.statusCode).toBe(204);
    expectError(await t.admin('GET', `/v1/admin/tenants/${tenant.id}`), 404, 'not_found');
    expectError(await t.admin('DELETE', `/v1/admin/tenants/${tenant.id}`), 404, 'not_found');
    expectError(await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { name: 'x' }), 404, 'not_found');
    const after = (await t.admin('GET', '/v1/admin/tenants')).json() as { tenants: { id: string }[] };
    expect(after.tenants.map((x) => x.id)).not.toContain(tenant.id);
    expectError(
      await t.as(key.api_key, 'POST', '/v1/decisions', payment('globex-3')),
      401,
      'invalid_credentials',
    );
    expectError(await t.as(key.api_key, 'GET', '/v1/manage/decisions'), 401, 'invalid_credentials');
    expectError(
      await t.admin('GET', `/v1/admin/tenants/${tenant.id}/decisions/${decision.decision_id}`),
      404,
      'not_found',
    );

    // The decision log holds nothing of the tenant any more.
    const log = new SqliteDecisionLog({ path: join(t.dataDir, 'decisions.db') });
    try {
      expect((await log.search({ tenantId: tenant.id, limit: 10 })).records).toEqual([]);
      expect(await log.get(tenant.id, decision.decision_id)).toBeUndefined();
      expect(await log.findByEventId(tenant.id, 'globex-2', 0, 'event')).toBeUndefined();
      expect(await log.listFeedback(tenant.id, 'globex-1')).toEqual([]);
    } finally {
      await log.close();
    }
  });

  it('answers 404 not_found for routes of a tenant that does not exist', async () => {
    for (const [method, url, body] of [
      ['GET', '/v1/admin/tenants/t_nope', undefined],
      ['PATCH', '/v1/admin/tenants/t_nope', { name: 'x' }],
      ['DELETE', '/v1/admin/tenants/t_nope', undefined],
      ['POST', '/v1/admin/tenants/t_nope/keys', { scopes: ['decide'] }],
      ['GET', '/v1/admin/tenants/t_nope/keys', undefined],
      ['PUT', '/v1/admin/tenants/t_nope/event-types/payment', { fields: {} }],
      ['GET', '/v1/admin/tenants/t_nope/event-types', undefined],
      ['GET', '/v1/admin/tenants/t_nope/audit', undefined],
    ] as const) {
      const response = await t.admin(method, url, body);
      expect(expectError(response, 404, 'not_found'), `${method} ${url}`).toBeDefined();
    }
  });
});

describe('audit', () => {
  interface AuditEntry {
    at: string;
    actor: string;
    tenantId: string | null;
    action: string;
    target: string;
    diff: { before: unknown; after: unknown };
  }

  it('records tenant, key and event-type changes with actor, action and diff, never a secret', async () => {
    const tenant = (await t.admin('POST', '/v1/admin/tenants', { name: 'Audited' })).json() as { id: string };
    await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, { name: 'Audited 2' });
    const issued = (
      await t.admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { scopes: ['decide', 'manage'] })
    ).json() as { api_key: string; key_id: string; secret: string };
    const schema = { fields: { account_id: { type: 'string', required: true } } };
    expect((await t.as(issued.api_key, 'PUT', '/v1/manage/event-types/login', schema)).statusCode).toBe(201);
    const changed = { fields: { ...schema.fields, ip: { type: 'ip' } } };
    expect(
      (await t.admin('PUT', `/v1/admin/tenants/${tenant.id}/event-types/login`, changed)).statusCode,
    ).toBe(200);
    const second = (await t.as(issued.api_key, 'POST', '/v1/manage/keys', { scopes: ['decide'] })).json() as {
      key_id: string;
      secret: string;
    };
    expect((await t.as(issued.api_key, 'DELETE', `/v1/manage/keys/${second.key_id}`)).statusCode).toBe(204);

    const response = await t.admin('GET', `/v1/admin/audit?tenant=${tenant.id}`);
    expect(response.statusCode).toBe(200);
    const entries = (response.json() as { entries: AuditEntry[] }).entries;
    const actions = entries.map((entry) => entry.action);
    expect(actions).toEqual(
      expect.arrayContaining([
        'tenant.create',
        'tenant.update',
        'key.create',
        'event_type.create',
        'event_type.update',
        'key.revoke',
      ]),
    );
    const find = (action: string, target?: string) =>
      entries.find((entry) => entry.action === action && (target === undefined || entry.target === target));
    expect(find('tenant.create')).toMatchObject({
      actor: 'admin',
      tenantId: tenant.id,
      diff: { before: null },
    });
    expect(find('tenant.update')).toMatchObject({
      actor: 'admin',
      diff: { before: { name: 'Audited' }, after: { name: 'Audited 2' } },
    });
    expect(find('key.create', issued.key_id)).toMatchObject({ actor: 'admin', diff: { before: null } });
    expect(find('event_type.create', 'login')).toMatchObject({
      actor: `key:${issued.key_id}`,
      diff: { before: null, after: schema },
    });
    expect(find('event_type.update', 'login')).toMatchObject({
      actor: 'admin',
      diff: { before: schema, after: changed },
    });
    expect(find('key.create', second.key_id)).toMatchObject({ actor: `key:${issued.key_id}` });
    expect(find('key.revoke', second.key_id)).toMatchObject({
      actor: `key:${issued.key_id}`,
      diff: { before: { revoked_at: null }, after: { revoked_at: expect.any(String) } },
    });
    for (const entry of entries) expect(Date.parse(entry.at)).not.toBeNaN();

    const text = response.body;
    expect(text).not.toContain(issued.secret);
    expect(text).not.toContain(second.secret);
    expect(text).not.toMatch(/secret/i);

    // The tenant sees the same trail through its manage key, and the admin per-tenant route agrees.
    const own = await t.as(issued.api_key, 'GET', '/v1/manage/audit');
    expect(own.statusCode).toBe(200);
    expect((own.json() as { entries: AuditEntry[] }).entries.map((entry) => entry.action).sort()).toEqual(
      [...actions].sort(),
    );
    expect(own.body).not.toContain(issued.secret);
    const perTenant = await t.admin('GET', `/v1/admin/tenants/${tenant.id}/audit`);
    expect(perTenant.json()).toEqual(own.json());

    await t.admin('DELETE', `/v1/admin/tenants/${tenant.id}`);
    const afterDelete = (await t.admin('GET', `/v1/admin/audit?tenant=${tenant.id}`)).json() as {
      entries: AuditEntry[];
    };
    expect(afterDelete.entries[0]).toMatchObject({
      action: 'tenant.delete',
      actor: 'admin',
      diff: { after: null },
    });
  });
});

describe('operations endpoints', () => {
  it('answers /healthz and /readyz with 200 and no credentials', async () => {
    const health = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });
  });

  it('serves Prometheus metrics with the decision, latency and queue-depth series', async () => {
    await decide(payment(nextId()));
    const response = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(String(response.headers['content-type'])).toMatch(/^text\/plain/);
    expect(response.body).toMatch(new RegExp(`^vigil_decisions_total\\{[^}]*tenant="${acme.id}"`, 'm'));
    expect(response.body).toMatch(/^vigil_http_request_duration_seconds_bucket\{/m);
    expect(response.body).toMatch(
      /^vigil_http_request_duration_seconds_count\{[^}]*route="\/v1\/decisions"/m,
    );
    expect(response.body).toMatch(/^vigil_decision_log_queue_depth \d+/m);
  });

  it('serves an OpenAPI document that describes /v1/decisions', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const document = response.json() as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(document.openapi).toMatch(/^3\./);
    expect(document.paths['/v1/decisions']?.post).toBeDefined();
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/v1/decisions/batch', '/v1/events', '/v1/feedback', '/v1/admin/tenants']),
    );
  });
});
