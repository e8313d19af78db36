import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode, type TestTenant } from './harness.js';
import { createKey, type ErrorBodyShape, expectError, expectWellFormedError, payment } from './support.js';

/**
 * One isolation suite for every route: tenant A's credentials (and A's id in admin URLs) can
 * neither read nor change tenant B's data. The route table below must list every route the app
 * registers under /v1; a new route without an isolation case fails the first test.
 */

let t: TestNode;
let a: TestTenant;
let b: TestTenant;

/** What tenant B owns, with the ids the checks aim at. */
const bData = {
  account: 'acct-b-secret',
  ip: '203.0.113.66',
  /** Decision ids by event id. */
  decisions: new Map<string, string>(),
  /** Decision-log record id of B's reported event `b-evt-1`. */
  eventRecordId: '',
  /** A second key of B, used as the target of revocation attempts. */
  spareKey: { apiKey: '', keyId: '', secret: '' },
  eventTypes: ['payment', 'b_only', 'b_put', 'b_admin_put'],
  /** Whether B could save policies (false while the rule compiler is not available). */
  policies: false,
  /** B's policy versions and states as set up, compared after every attempt. */
  policySnapshot: '',
  /** B's lists and their entries as set up, compared after every attempt. */
  listSnapshot: '',
};

/** B's lists and entries, read with B's key. */
async function listSnapshotOfB(): Promise<string> {
  const parts: unknown[] = [];
  for (const url of [
    '/v1/manage/lists',
    '/v1/manage/lists/b_blocked/entries',
    '/v1/manage/lists/b_put_list/entries',
  ]) {
    const response = await t.as(b.apiKey, 'GET', url);
    expect(response.statusCode, response.body).toBe(200);
    parts.push(response.json());
  }
  return JSON.stringify(parts);
}

/** B's policy versions and serving states, read with B's key. */
async function policySnapshotOfB(): Promise<string> {
  const parts: unknown[] = [];
  for (const url of ['/v1/manage/policies/payment/versions', '/v1/manage/policies/b_only/versions']) {
    const response = await t.as(b.apiKey, 'GET', url);
    expect(response.statusCode, response.body).toBe(200);
    // `updated_at` of a never-configured state is the read time; everything else must not move.
    parts.push(JSON.stringify(response.json(), (key, value) => (key === 'updated_at' ? undefined : value)));
  }
  return JSON.stringify(parts);
}

/** B's policy: its rule id, name and reason must never show up for A. */
const bPolicy = {
  strategy: 'worst',
  description: 'b-policy-description',
  rules: [
    {
      id: 'b-secret-rule',
      name: 'b secret rule',
      when: "event.type == 'never-matches'",
      verdict: 'review',
      reason: 'b-secret-reason',
    },
  ],
};
const aPolicy = { rules: [{ id: 'a-rule', when: "event.type == 'never'", verdict: 'review' }] };

const onlyFields = { fields: { secret_b_field: { type: 'string', required: true } } };

interface Page {
  decisions: { decision_id: string; event_id: string }[];
  next_cursor: string | null;
}
interface AuditEntry {
  tenantId: string | null;
  target: string;
  action: string;
}

beforeAll(async () => {
  t = await startTestNode();
  a = await t.tenant('tenant-a');
  b = await t.tenant('tenant-b');
  // A has a type of its own too, and data of its own.
  expect((await t.as(a.apiKey, 'PUT', '/v1/manage/event-types/a_only', onlyFields)).statusCode).toBe(201);
  expect(
    (await t.as(a.apiKey, 'POST', '/v1/decisions', payment('a-dec-1', { account_id: 'acct-a' }))).statusCode,
  ).toBe(200);
  await t.as(a.apiKey, 'POST', '/v1/events', { events: [payment('a-evt-1', { account_id: 'acct-a' })] });

  for (const type of ['b_only', 'b_put', 'b_admin_put']) {
    expect((await t.as(b.apiKey, 'PUT', `/v1/manage/event-types/${type}`, onlyFields)).statusCode).toBe(201);
  }
  for (const id of ['b-dec-1', 'b-dec-2', 'b-dec-3']) {
    const response = await t.as(
      b.apiKey,
      'POST',
      '/v1/decisions',
      payment(id, { account_id: bData.account, ip: bData.ip }),
    );
    expect(response.statusCode).toBe(200);
    bData.decisions.set(id, (response.json() as { decision_id: string }).decision_id);
  }
  const only = await t.as(b.apiKey, 'POST', '/v1/decisions', {
    type: 'b_only',
    id: 'b-dec-only',
    fields: { secret_b_field: bData.account },
  });
  expect(only.statusCode).toBe(200);
  bData.decisions.set('b-dec-only', (only.json() as { decision_id: string }).decision_id);
  const reported = await t.as(b.apiKey, 'POST', '/v1/events', {
    events: ['b-evt-1', 'b-evt-2'].map((id) => payment(id, { account_id: bData.account })),
  });
  expect(reported.json()).toMatchObject({ accepted: 2 });
  const events = (
    await t.as(b.apiKey, 'GET', `/v1/manage/decisions?entity=${bData.account}`)
  ).json() as Page & {
    decisions: { kind: string }[];
  };
  bData.eventRecordId = events.decisions.find((d) => d.kind === 'event' && d.event_id === 'b-evt-1')
    ?.decision_id as string;
  expect(bData.eventRecordId).toEqual(expect.any(String));
  expect(
    (await t.as(b.apiKey, 'POST', '/v1/feedback', { event_id: 'b-dec-1', label: 'fraud' })).statusCode,
  ).toBe(202);
  bData.spareKey = await createKey(t, b.id, ['decide']);
  // B's feature, on B's own type: its name and definition must never show up for A.
  const bFeature = await t.as(b.apiKey, 'PUT', '/v1/manage/features/b_secret_feature', {
    aggregation: 'count',
    by: ['secret_b_field'],
    window: '1h',
    event_types: ['b_only'],
    description: 'b-feature-description',
  });
  expect(bFeature.statusCode, bFeature.body).toBe(201);

  // B's policies: payment v1 and v2, both published in turn (history [1]); b_only v1 published.
  // While the rule compiler is not wired in, drafts are refused and B simply has no policies.
  const probe = await t.as(b.apiKey, 'POST', '/v1/manage/policies/payment/versions', bPolicy);
  bData.policies = probe.statusCode === 201;
  if (!bData.policies) expectError(probe, 422, 'invalid_policy');
  for (const [type, versions] of [
    ['payment', 2],
    ['b_only', 1],
  ] as const) {
    if (!bData.policies) break;
    for (let version = 1; version <= versions; version++) {
      if (!(type === 'payment' && version === 1)) {
        const created = await t.as(b.apiKey, 'POST', `/v1/manage/policies/${type}/versions`, bPolicy);
        expect(created.statusCode, created.body).toBe(201);
      }
      const published = await t.as(
        b.apiKey,
        'POST',
        `/v1/manage/policies/${type}/versions/${version}/publish`,
        {},
      );
      // While the `:version` coercion bug stands, publishing is refused; B keeps drafts only.
      if (!isVersionCoercionBug(published.json() as ErrorBodyShape)) {
        expect(published.statusCode, published.body).toBe(200);
      }
    }
  }
  bData.policySnapshot = await policySnapshotOfB();

  // B's lists: one holding B's IP, one whose name A also uses for a list of its own.
  for (const [name, body] of [
    ['b_blocked', { kind: 'block', type: 'ip' }],
    ['b_put_list', { kind: 'watch', type: 'string', description: 'b-list-description' }],
  ] as const) {
    expect((await t.as(b.apiKey, 'PUT', `/v1/manage/lists/${name}`, body)).statusCode).toBe(201);
  }
  for (const [name, value] of [
    ['b_blocked', bData.ip],
    ['b_put_list', 'b-list-value'],
  ] as const) {
    const added = await t.as(b.apiKey, 'POST', `/v1/manage/lists/${name}/entries`, [
      { value, note: 'b-list-note' },
    ]);
    expect(added.json()).toMatchObject({ added: 1 });
  }
  bData.listSnapshot = await listSnapshotOfB();
});
afterAll(async () => {
  await t.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers

const bDecisionIds = () => [...bData.decisions.values(), bData.eventRecordId];
const asA = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown) =>
  t.as(a.apiKey, method, url, body);

/** Every decision-log id a search shows, walking all pages. */
async function allIds(search: (cursor: string | null) => Promise<Page>): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 50; pages++) {
    const page = await search(cursor);
    ids.push(...page.decisions.map((d) => d.decision_id));
    cursor = page.next_cursor;
    if (cursor === null) break;
  }
  return ids;
}

async function manageSearch(apiKey: string, query: string): Promise<string[]> {
  return allIds(async (cursor) => {
    const url = `/v1/manage/decisions?${query}${cursor === null ? '' : `&cursor=${cursor}`}`;
    const response = await t.as(apiKey, 'GET', url);
    expect(response.statusCode, response.body).toBe(200);
    return response.json() as Page;
  });
}

async function adminSearch(tenantId: string, query: string): Promise<string[]> {
  return allIds(async (cursor) => {
    const url = `/v1/admin/tenants/${tenantId}/decisions?${query}${cursor === null ? '' : `&cursor=${cursor}`}`;
    const response = await t.admin('GET', url);
    expect(response.statusCode, response.body).toBe(200);
    return response.json() as Page;
  });
}

/** Asserts none of B's data (ids, values, rules) appears in a body, whatever A asked for. */
function expectNoBSecrets(text: string): void {
  for (const id of bDecisionIds()) expect(text).not.toContain(id);
  expect(text).not.toContain(bData.account);
  expect(text).not.toContain(bData.ip);
  expect(text).not.toContain(b.keyId);
  expect(text).not.toContain(bData.spareKey.keyId);
  expect(text).not.toContain(b.id);
  expect(text).not.toContain('b-secret-rule');
  expect(text).not.toContain('b-secret-reason');
  expect(text).not.toContain('b-policy-description');
}

/** Also none of B's names: for answers to requests that did not name them. */
function expectNothingOfB(text: string): void {
  expectNoBSecrets(text);
  expect(text).not.toContain('b_only');
  expect(text).not.toContain('b-dec-');
  expect(text).not.toContain('b-evt-');
}

/** B's data, read with B's own credentials, is what it was set up to be. */
async function expectBIntact(): Promise<void> {
  expect((await t.admin('GET', `/v1/admin/tenants/${b.id}`)).json()).toMatchObject({
    id: b.id,
    name: 'tenant-b',
  });
  for (const key of [b.apiKey, bData.spareKey.apiKey]) {
    const replay = await t.as(
      key,
      'POST',
      '/v1/decisions',
      payment('b-dec-1', { account_id: bData.account }),
    );
    expect(replay.statusCode, replay.body).toBe(200);
    expect((replay.json() as { decision_id: string }).decision_id).toBe(bData.decisions.get('b-dec-1'));
  }
  const types = (await t.as(b.apiKey, 'GET', '/v1/manage/event-types')).json() as {
    event_types: { type: string; version: number; fields: Record<string, unknown> }[];
  };
  expect(types.event_types.map((type) => type.type).sort()).toEqual([...bData.eventTypes].sort());
  for (const type of types.event_types.filter((x) => x.type !== 'payment')) {
    expect(type.version, type.type).toBe(1);
    expect(type.fields).toEqual(onlyFields.fields);
  }
  const ids = new Set(await manageSearch(b.apiKey, `entity=${bData.account}`));
  for (const id of bDecisionIds()) expect(ids.has(id)).toBe(true);
  const detail = (
    await t.as(b.apiKey, 'GET', `/v1/manage/decisions/${bData.decisions.get('b-dec-1')}`)
  ).json() as {
    feedback: { label: string }[];
  };
  expect(detail.feedback.map((f) => f.label)).toEqual(['fraud']);
  expect(await policySnapshotOfB()).toBe(bData.policySnapshot);
  if (bData.policies) expect(bData.policySnapshot).toContain('b-secret-rule');
  expect(await listSnapshotOfB()).toBe(bData.listSnapshot);
  expect(bData.listSnapshot).toContain(bData.ip);
}

/** Parses `printRoutes({ commonPrefix: false })` into `METHOD /full/path` strings. */
function registeredRoutes(app: FastifyInstance): string[] {
  const routes = new Set<string>();
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:│ {3}| {4})*)[├└]── (.*?)(?: \(([^)]*)\))?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] as string).length / 4;
    const path = `${depth === 0 ? '' : stack[depth - 1]}${match[2]}`;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (match[3] ?? '').split(',')) {
      if (method.trim() !== '') routes.add(`${method.trim()} ${path}`);
    }
  }
  return [...routes].sort();
}

// ---------------------------------------------------------------------------------------------
// The table: one isolation case per route. `HEAD` routes are covered through their `GET`.

type Case = () => Promise<void>;

/** On an admin route, A's API key is refused whatever tenant the URL names. */
async function aKeyRefusedOnAdmin(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  body?: unknown,
) {
  expectError(await asA(method, url, body), 401, 'invalid_credentials');
}

const table: Record<string, Case> = {
  // --- data plane: A's key, B's names and ids ----------------------------------------------------
  'POST /v1/decisions': async () => {
    const unknown = await asA('POST', '/v1/decisions', {
      type: 'b_only',
      id: 'x-1',
      fields: { secret_b_field: 'x' },
    });
    expectError(unknown, 422, 'unknown_event_type');
    // B's event id in A's tenant is a new event: A gets its own decision, not B's.
    const same = await asA('POST', '/v1/decisions', payment('b-dec-2', { account_id: 'acct-a' }));
    expect(same.statusCode).toBe(200);
    expect(same.headers['idempotent-replay']).toBeUndefined();
    expect((same.json() as { decision_id: string }).decision_id).not.toBe(bData.decisions.get('b-dec-2'));
    const again = await t.as(
      b.apiKey,
      'POST',
      '/v1/decisions',
      payment('b-dec-2', { account_id: bData.account }),
    );
    expect((again.json() as { decision_id: string }).decision_id).toBe(bData.decisions.get('b-dec-2'));
  },
  'POST /v1/decisions/batch': async () => {
    const response = await asA('POST', '/v1/decisions/batch', {
      events: [
        { type: 'b_only', id: 'x-2', fields: { secret_b_field: 'x' } },
        payment('b-dec-3', { account_id: 'acct-a' }),
      ],
    });
    expect(response.statusCode).toBe(200);
    const [first, second] = (
      response.json() as {
        decisions: { decision_id?: string; error?: { code: string } }[];
      }
    ).decisions;
    expect(first?.error?.code).toBe('unknown_event_type');
    expect(second?.decision_id).toEqual(expect.any(String));
    expect(second?.decision_id).not.toBe(bData.decisions.get('b-dec-3'));
    expect(response.body).not.toContain(bData.decisions.get('b-dec-3'));
  },
  'POST /v1/events': async () => {
    const response = await asA('POST', '/v1/events', {
      events: [
        { type: 'b_only', id: 'x-3', fields: { secret_b_field: 'x' } },
        payment('b-evt-2', { account_id: 'acct-a' }),
      ],
    });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({
      accepted: 1,
      duplicates: 0,
      rejected: 1,
      results: [{ error: { code: 'unknown_event_type' } }, { event_id: 'b-evt-2', status: 'accepted' }],
    });
  },
  'POST /v1/feedback': async () => {
    for (const eventId of ['b-dec-1', 'b-evt-1', 'b-dec-only']) {
      const response = await asA('POST', '/v1/feedback', { event_id: eventId, label: 'legit' });
      expect(expectError(response, 404, 'event_not_found'), eventId).toBeDefined();
    }
  },

  // --- /v1/manage: A's manage key -------------------------------------------------------------------
  'POST /v1/manage/keys': async () => {
    expectError(
      await asA('POST', '/v1/manage/keys', { scopes: ['manage'], tenant: b.id }),
      422,
      'invalid_config',
    );
    const created = await asA('POST', '/v1/manage/keys', { scopes: ['decide', 'manage'] });
    expect(created.statusCode).toBe(201);
    const key = created.json() as { api_key: string; key_id: string };
    expect(await manageSearch(key.api_key, `entity=${bData.account}`)).toEqual([]);
    expect((await manageSearch(key.api_key, 'entity=acct-a')).length).toBeGreaterThan(0);
    const bKeys = (await t.as(b.apiKey, 'GET', '/v1/manage/keys')).body;
    expect(bKeys).not.toContain(key.key_id);
  },
  'GET /v1/manage/keys': async () => {
    const response = await asA('GET', '/v1/manage/keys');
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain(a.keyId);
    expectNothingOfB(response.body);
  },
  'DELETE /v1/manage/keys/:key_id': async () => {
    for (const keyId of [b.keyId, bData.spareKey.keyId]) {
      expectError(await asA('DELETE', `/v1/manage/keys/${keyId}`), 404, 'not_found');
    }
    expect(
      (await t.as(bData.spareKey.apiKey, 'POST', '/v1/decisions', payment('b-spare-1'))).statusCode,
    ).toBe(200);
  },
  'PUT /v1/manage/event-types/:type': async () => {
    const response = await asA('PUT', '/v1/manage/event-types/b_put', {
      fields: { overwritten: { type: 'number' } },
    });
    // Created in A's tenant: B's type of the same name was not seen, let alone replaced.
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ type: 'b_put', version: 1 });
    const bType = (await t.as(b.apiKey, 'GET', '/v1/manage/event-types/b_put')).json();
    expect(bType).toMatchObject({ version: 1, fields: onlyFields.fields });
  },
  'GET /v1/manage/event-types': async () => {
    const response = await asA('GET', '/v1/manage/event-types');
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('a_only');
    expectNothingOfB(response.body);
  },
  'GET /v1/manage/event-types/:type': async () => {
    expectError(await asA('GET', '/v1/manage/event-types/b_only'), 404, 'not_found');
    const shared = await asA('GET', '/v1/manage/event-types/payment');
    expect(shared.statusCode).toBe(200);
    expectNothingOfB(shared.body);
  },
  'GET /v1/manage/decisions': async () => {
    expect(await manageSearch(a.apiKey, `entity=${bData.account}`)).toEqual([]);
    expect(await manageSearch(a.apiKey, `entity=${bData.ip}`)).toEqual([]);
    for (const query of ['verdict=accept', 'from=2000-01-01T00:00:00Z', '']) {
      const ids = await manageSearch(a.apiKey, query);
      expect(ids.length, query).toBeGreaterThan(0);
      for (const id of bDecisionIds()) expect(ids, query).not.toContain(id);
    }
  },
  'GET /v1/manage/decisions/:id': async () => {
    for (const id of bDecisionIds()) {
      expect(expectError(await asA('GET', `/v1/manage/decisions/${id}`), 404, 'not_found'), id).toBeDefined();
    }
  },
  'GET /v1/manage/audit': async () => {
    const response = await asA('GET', '/v1/manage/audit');
    expect(response.statusCode).toBe(200);
    const entries = (response.json() as { entries: AuditEntry[] }).entries;
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((entry) => entry.tenantId === a.id)).toBe(true);
    expectNothingOfB(response.body);
  },

  // --- /v1/admin: A's key is refused; the admin token with A's id in the URL sees only A ----------
  'POST /v1/admin/tenants': async () => {
    await aKeyRefusedOnAdmin('POST', '/v1/admin/tenants', { name: 'sneaky' });
  },
  'GET /v1/admin/tenants': async () => {
    await aKeyRefusedOnAdmin('GET', '/v1/admin/tenants');
  },
  'GET /v1/admin/tenants/:tenant': async () => {
    await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${b.id}`);
    await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${a.id}`);
  },
  'PATCH /v1/admin/tenants/:tenant': async () => {
    await aKeyRefusedOnAdmin('PATCH', `/v1/admin/tenants/${b.id}`, { name: 'owned' });
    await aKeyRefusedOnAdmin('PATCH', `/v1/admin/tenants/${a.id}`, { max_concurrency: 100_000 });
  },
  'DELETE /v1/admin/tenants/:tenant': async () => {
    await aKeyRefusedOnAdmin('DELETE', `/v1/admin/tenants/${b.id}`);
  },
  'POST /v1/admin/tenants/:tenant/keys': async () => {
    await aKeyRefusedOnAdmin('POST', `/v1/admin/tenants/${b.id}/keys`, { scopes: ['manage'] });
    const created = await t.admin('POST', `/v1/admin/tenants/${a.id}/keys`, { scopes: ['manage'] });
    expect(created.statusCode).toBe(201);
    const key = created.json() as { api_key: string };
    expect(await manageSearch(key.api_key, `entity=${bData.account}`)).toEqual([]);
  },
  'GET /v1/admin/tenants/:tenant/keys': async () => {
    await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${b.id}/keys`);
    const response = await t.admin('GET', `/v1/admin/tenants/${a.id}/keys`);
    expect(response.statusCode).toBe(200);
    expectNothingOfB(response.body);
  },
  'DELETE /v1/admin/tenants/:tenant/keys/:key_id': async () => {
    await aKeyRefusedOnAdmin('DELETE', `/v1/admin/tenants/${b.id}/keys/${bData.spareKey.keyId}`);
    expectError(
      await t.admin('DELETE', `/v1/admin/tenants/${a.id}/keys/${bData.spareKey.keyId}`),
      404,
      'not_found',
    );
    expect(
      (await t.as(bData.spareKey.apiKey, 'POST', '/v1/decisions', payment('b-spare-2'))).statusCode,
    ).toBe(200);
  },
  'PUT /v1/admin/tenants/:tenant/event-types/:type': async () => {
    await aKeyRefusedOnAdmin('PUT', `/v1/admin/tenants/${b.id}/event-types/b_admin_put`, { fields: {} });
    const response = await t.admin('PUT', `/v1/admin/tenants/${a.id}/event-types/b_admin_put`, {
      fields: { overwritten: { type: 'number' } },
    });
    expect(response.statusCode).toBe(201);
    const bType = (await t.as(b.apiKey, 'GET', '/v1/manage/event-types/b_admin_put')).json();
    expect(bType).toMatchObject({ version: 1, fields: onlyFields.fields });
  },
  'GET /v1/admin/tenants/:tenant/event-types': async () => {
    await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${b.id}/event-types`);
    const response = await t.admin('GET', `/v1/admin/tenants/${a.id}/event-types`);
    expect(response.statusCode).toBe(200);
    expectNothingOfB(response.body);
  },
  'GET /v1/admin/tenants/:tenant/event-types/:type': async () => {
    await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${b.id}/event-types/b_only`);
    expectError(await t.admin('GET', `/v1/admin/tenants/${a.id}/event-types/b_only`), 404, 'not_found');
  },
  'GET /v1/admin/tenants/:tenant/decisions': async () => {
    await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${b.id}/decisions`);
    expect(await adminSearch(a.id, `entity=${bData.account}`)).toEqual([]);
    const all = await adminSearch(a.id, 'verdict=accept');
    for (const id of bDecisionIds()) expect(all).not.toContain(id);
  },
  'GET /v1/admin/tenants/:tenant/decisions/:id': async () => {
    for (const id of bDecisionIds()) {
      await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${b.id}/decisions/${id}`);
      expectError(await t.admin('GET', `/v1/admin/tenants/${a.id}/decisions/${id}`), 404, 'not_found');
    }
  },
  'GET /v1/admin/tenants/:tenant/audit': async () => {
    await aKeyRefusedOnAdmin('GET', `/v1/admin/tenants/${b.id}/audit`);
    const response = await t.admin('GET', `/v1/admin/tenants/${a.id}/audit`);
    expect(response.statusCode).toBe(200);
    expect(
      (response.json() as { entries: AuditEntry[] }).entries.every((entry) => entry.tenantId === a.id),
    ).toBe(true);
    expectNothingOfB(response.body);
  },
  'POST /v1/admin/faults': async () => {
    await aKeyRefusedOnAdmin('POST', '/v1/admin/faults', {
      component: 'list_store',
      kind: 'outage',
      tenant: b.id,
      duration_seconds: 1,
    });
    expect((await t.admin('GET', '/v1/admin/faults')).json()).toEqual({ faults: [] });
  },
  'GET /v1/admin/faults': async () => {
    await aKeyRefusedOnAdmin('GET', '/v1/admin/faults');
  },
  'DELETE /v1/admin/faults/:id': async () => {
    await aKeyRefusedOnAdmin('DELETE', '/v1/admin/faults/flt_any');
  },
  'GET /v1/admin/health': async () => {
    await aKeyRefusedOnAdmin('GET', '/v1/admin/health');
  },
  'GET /v1/admin/audit': async () => {
    await aKeyRefusedOnAdmin('GET', '/v1/admin/audit');
    await aKeyRefusedOnAdmin('GET', `/v1/admin/audit?tenant=${b.id}`);
    const response = await t.admin('GET', `/v1/admin/audit?tenant=${a.id}`);
    expect(response.statusCode).toBe(200);
    const entries = (response.json() as { entries: AuditEntry[] }).entries;
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((entry) => entry.tenantId === a.id)).toBe(true);
    expectNothingOfB(response.body);
  },
};

/**
 * Known server bug (see decisions.test.ts, "accepts numeric query and path parameters"): Ajv runs
 * with `coerceTypes: false`, so the integer `:version` path parameter is refused with 400 before
 * the handler runs. That refusal shows nothing of B either; isolation is still asserted on it.
 */
function isVersionCoercionBug(error: ErrorBodyShape): boolean {
  return error.error?.code === 'invalid_request' && error.error.details?.[0]?.path === 'params.version';
}

/**
 * Policy routes exist twice: under /v1/manage for A's key and under /v1/admin/tenants/:tenant for
 * the admin token with A's id. Either way A reaches only A's policies.
 */
function policyCases(prefix: string, base: () => string, admin: boolean): Record<string, Case> {
  const send = (method: 'GET' | 'POST', path: string, body?: unknown) =>
    admin ? t.admin(method, `${base()}${path}`, body) : asA(method, `${base()}${path}`, body);
  /** On the admin routes, A's key is refused whatever tenant the URL names. */
  const refused = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    if (admin) await aKeyRefusedOnAdmin(method, `/v1/admin/tenants/${b.id}${path}`, body);
  };
  const notFound = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const response = await send(method, path, body);
    const error = expectWellFormedError(response, path);
    expectNoBSecrets(response.body);
    if (isVersionCoercionBug(error)) return;
    expect({ status: response.statusCode, code: error.error.code }, path).toEqual({
      status: 404,
      code: 'not_found',
    });
  };
  return {
    [`POST ${prefix}/policies/:type/versions`]: async () => {
      await refused('POST', '/policies/payment/versions', aPolicy);
      await notFound('POST', '/policies/b_only/versions', aPolicy);
      const created = await send('POST', '/policies/payment/versions', aPolicy);
      if (!bData.policies) {
        expectError(created, 422, 'invalid_policy');
        return;
      }
      expect(created.statusCode, created.body).toBe(201);
      // A's own numbering: B's two versions are not counted.
      expect((created.json() as { version: number }).version).toBeLessThanOrEqual(2);
    },
    [`GET ${prefix}/policies/:type/versions`]: async () => {
      await refused('GET', '/policies/payment/versions');
      await notFound('GET', '/policies/b_only/versions');
      const response = await send('GET', '/policies/payment/versions');
      expect(response.statusCode).toBe(200);
      expect((response.json() as { state: { published: number | null } }).state.published).toBeNull();
      expectNothingOfB(response.body);
    },
    [`GET ${prefix}/policies/:type/versions/:version`]: async () => {
      await refused('GET', '/policies/payment/versions/2');
      await notFound('GET', '/policies/b_only/versions/1');
      await notFound('GET', '/policies/payment/versions/3');
      const own = await send('GET', '/policies/payment/versions/1');
      if (own.statusCode !== 200) expectWellFormedError(own);
      expectNothingOfB(own.body);
    },
    [`GET ${prefix}/policies/:type`]: async () => {
      await refused('GET', '/policies/payment');
      await notFound('GET', '/policies/b_only');
      const response = await send('GET', '/policies/payment');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({ published: null, history: [] });
    },
    [`POST ${prefix}/policies/:type/versions/:version/publish`]: async () => {
      await refused('POST', '/policies/payment/versions/1/publish', {});
      await notFound('POST', '/policies/b_only/versions/1/publish', {});
      await notFound('POST', '/policies/payment/versions/3/publish', {});
    },
    [`POST ${prefix}/policies/:type/versions/:version/shadow`]: async () => {
      await refused('POST', '/policies/payment/versions/1/shadow', {});
      await notFound('POST', '/policies/b_only/versions/1/shadow', {});
      await notFound('POST', '/policies/payment/versions/3/shadow', {});
    },
    [`POST ${prefix}/policies/:type/rollback`]: async () => {
      await refused('POST', '/policies/payment/rollback', {});
      await notFound('POST', '/policies/b_only/rollback', {});
      // A has no earlier published payment version; B's history is not A's.
      expectError(await send('POST', '/policies/payment/rollback', {}), 409, 'invalid_state');
    },
    [`POST ${prefix}/policies/:type/test`]: async () => {
      const body = {
        policy: aPolicy,
        events: [{ type: 'b_only', id: 'x-9', fields: { secret_b_field: 'x' } }],
      };
      await refused('POST', '/policies/b_only/test', body);
      await notFound('POST', '/policies/b_only/test', body);
    },
  };
}

/**
 * Feature routes exist under /v1/manage and /v1/admin/tenants/:tenant. A naming B's feature in its
 * own tenant finds nothing; a PUT of the same name makes a feature of A's (on A's types only).
 */
function featureCases(prefix: string, base: () => string, admin: boolean): Record<string, Case> {
  type Method = 'GET' | 'PUT' | 'DELETE';
  const send = (method: Method, path: string, body?: unknown) =>
    admin ? t.admin(method, `${base()}${path}`, body) : asA(method, `${base()}${path}`, body);
  const refused = async (method: Method, path: string, body?: unknown) => {
    if (admin) await aKeyRefusedOnAdmin(method, `/v1/admin/tenants/${b.id}${path}`, body);
  };
  const hidden = (body: string) => {
    expectNoBSecrets(body);
    expect(body).not.toContain('b_secret_feature');
    expect(body).not.toContain('b-feature-description');
  };
  const definition = (eventType: string, field: string) => ({
    aggregation: 'count',
    by: [field],
    window: '1h',
    event_types: [eventType],
  });
  return {
    [`PUT ${prefix}/features/:name`]: async () => {
      await refused('PUT', '/features/b_secret_feature', definition('b_only', 'secret_b_field'));
      // B's event type is not A's: A cannot define a feature on it.
      const onB = await send('PUT', '/features/b_secret_feature', definition('b_only', 'secret_b_field'));
      expectError(onB, 422, 'invalid_config');
      hidden(onB.body);
      const own = await send('PUT', '/features/b_secret_feature', definition('payment', 'account_id'));
      expect([200, 201], own.body).toContain(own.statusCode);
      expect((await send('DELETE', '/features/b_secret_feature')).statusCode).toBe(204);
    },
    [`GET ${prefix}/features`]: async () => {
      await refused('GET', '/features');
      const response = await send('GET', '/features');
      expect(response.statusCode).toBe(200);
      hidden(response.body);
    },
    [`GET ${prefix}/features/:name`]: async () => {
      await refused('GET', '/features/b_secret_feature');
      const response = await send('GET', '/features/b_secret_feature');
      expectError(response, 404, 'not_found');
      // The answer names only what A asked for, nothing of B's definition.
      expectNoBSecrets(response.body);
      expect(response.body).not.toContain('b-feature-description');
    },
    [`DELETE ${prefix}/features/:name`]: async () => {
      await refused('DELETE', '/features/b_secret_feature');
      const response = await send('DELETE', '/features/b_secret_feature');
      expectError(response, 404, 'not_found');
      // The answer names only what A asked for, nothing of B's definition.
      expectNoBSecrets(response.body);
      expect(response.body).not.toContain('b-feature-description');
      const still = await t.as(b.apiKey, 'GET', '/v1/manage/features/b_secret_feature');
      expect(still.statusCode).toBe(200);
    },
  };
}

/**
 * List routes, like policy routes, exist under /v1/manage and /v1/admin/tenants/:tenant. A names
 * B's lists in A's own tenant: a read or change finds nothing, a PUT makes A a list of its own.
 */
function listCases(prefix: string, base: () => string, admin: boolean): Record<string, Case> {
  type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
  const send = (method: Method, path: string, body?: unknown) =>
    admin ? t.admin(method, `${base()}${path}`, body) : asA(method, `${base()}${path}`, body);
  const refused = async (method: Method, path: string, body?: unknown) => {
    if (admin) await aKeyRefusedOnAdmin(method, `/v1/admin/tenants/${b.id}${path}`, body);
  };
  const notFound = async (method: Method, path: string, body?: unknown) => {
    await refused(method, path, body);
    const response = await send(method, path, body);
    expectError(response, 404, 'not_found');
    expectNoBSecrets(response.body);
    expect(response.body).not.toContain('b-list');
  };
  const ipPath = `/lists/b_blocked/entries/${encodeURIComponent(bData.ip)}`;
  return {
    [`PUT ${prefix}/lists/:name`]: async () => {
      await refused('PUT', '/lists/b_put_list', { kind: 'allow' });
      const response = await send('PUT', '/lists/b_put_list', { kind: 'allow', description: 'a-list' });
      expect([200, 201], response.body).toContain(response.statusCode);
      expect(response.json()).toMatchObject({ kind: 'allow', description: 'a-list', entries: 0 });
    },
    [`GET ${prefix}/lists`]: async () => {
      await refused('GET', '/lists');
      const response = await send('GET', '/lists');
      expect(response.statusCode).toBe(200);
      expectNoBSecrets(response.body);
      expect(response.body).not.toContain('b_blocked');
      expect(response.body).not.toContain('b-list');
    },
    [`GET ${prefix}/lists/:name`]: async () => {
      await notFound('GET', '/lists/b_blocked');
    },
    [`DELETE ${prefix}/lists/:name`]: async () => {
      await notFound('DELETE', '/lists/b_blocked');
    },
    [`POST ${prefix}/lists/:name/entries`]: async () => {
      await notFound('POST', '/lists/b_blocked/entries', [{ value: '192.0.2.1' }]);
    },
    [`DELETE ${prefix}/lists/:name/entries/:value`]: async () => {
      await notFound('DELETE', ipPath);
    },
    [`GET ${prefix}/lists/:name/entries`]: async () => {
      await notFound('GET', '/lists/b_blocked/entries');
      await notFound('GET', '/lists/b_blocked/entries?format=csv');
    },
  };
}

Object.assign(
  table,
  policyCases('/v1/manage', () => '/v1/manage', false),
  policyCases('/v1/admin/tenants/:tenant', () => `/v1/admin/tenants/${a.id}`, true),
  listCases('/v1/manage', () => '/v1/manage', false),
  listCases('/v1/admin/tenants/:tenant', () => `/v1/admin/tenants/${a.id}`, true),
  featureCases('/v1/manage', () => '/v1/manage', false),
  featureCases('/v1/admin/tenants/:tenant', () => `/v1/admin/tenants/${a.id}`, true),
);

/** For each GET route, a request whose HEAD twin must answer with the same status. */
const headProbes: Record<string, () => [url: string, admin: boolean]> = {
  '/v1/manage/keys': () => ['/v1/manage/keys', false],
  '/v1/manage/event-types': () => ['/v1/manage/event-types', false],
  '/v1/manage/event-types/:type': () => ['/v1/manage/event-types/b_only', false],
  '/v1/manage/decisions': () => [`/v1/manage/decisions?entity=${bData.account}`, false],
  '/v1/manage/decisions/:id': () => [`/v1/manage/decisions/${bData.decisions.get('b-dec-1')}`, false],
  '/v1/manage/audit': () => ['/v1/manage/audit', false],
  '/v1/admin/tenants': () => ['/v1/admin/tenants', false],
  '/v1/admin/faults': () => ['/v1/admin/faults', false],
  '/v1/admin/health': () => ['/v1/admin/health', false],
  '/v1/admin/tenants/:tenant': () => [`/v1/admin/tenants/${b.id}`, false],
  '/v1/admin/tenants/:tenant/keys': () => [`/v1/admin/tenants/${b.id}/keys`, false],
  '/v1/admin/tenants/:tenant/event-types': () => [`/v1/admin/tenants/${b.id}/event-types`, false],
  '/v1/admin/tenants/:tenant/event-types/:type': () => [`/v1/admin/tenants/${a.id}/event-types/b_only`, true],
  '/v1/admin/tenants/:tenant/decisions': () => [`/v1/admin/tenants/${b.id}/decisions`, false],
  '/v1/admin/tenants/:tenant/decisions/:id': () => [
    `/v1/admin/tenants/${a.id}/decisions/${bData.decisions.get('b-dec-1')}`,
    true,
  ],
  '/v1/admin/tenants/:tenant/audit': () => [`/v1/admin/tenants/${b.id}/audit`, false],
  '/v1/admin/audit': () => ['/v1/admin/audit', false],
  '/v1/manage/policies/:type': () => ['/v1/manage/policies/b_only', false],
  '/v1/manage/policies/:type/versions': () => ['/v1/manage/policies/b_only/versions', false],
  '/v1/manage/policies/:type/versions/:version': () => ['/v1/manage/policies/payment/versions/2', false],
  '/v1/admin/tenants/:tenant/policies/:type': () => [`/v1/admin/tenants/${a.id}/policies/b_only`, true],
  '/v1/admin/tenants/:tenant/policies/:type/versions': () => [
    `/v1/admin/tenants/${b.id}/policies/payment/versions`,
    false,
  ],
  '/v1/admin/tenants/:tenant/policies/:type/versions/:version': () => [
    `/v1/admin/tenants/${a.id}/policies/b_only/versions/1`,
    true,
  ],
  '/v1/manage/features': () => ['/v1/manage/features', false],
  '/v1/manage/features/:name': () => ['/v1/manage/features/b_secret_feature', false],
  '/v1/admin/tenants/:tenant/features': () => [`/v1/admin/tenants/${b.id}/features`, false],
  '/v1/admin/tenants/:tenant/features/:name': () => [
    `/v1/admin/tenants/${a.id}/features/b_secret_feature`,
    true,
  ],
  '/v1/manage/lists': () => ['/v1/manage/lists', false],
  '/v1/manage/lists/:name': () => ['/v1/manage/lists/b_blocked', false],
  '/v1/manage/lists/:name/entries': () => ['/v1/manage/lists/b_blocked/entries', false],
  '/v1/admin/tenants/:tenant/lists': () => [`/v1/admin/tenants/${b.id}/lists`, false],
  '/v1/admin/tenants/:tenant/lists/:name': () => [`/v1/admin/tenants/${a.id}/lists/b_blocked`, true],
  '/v1/admin/tenants/:tenant/lists/:name/entries': () => [
    `/v1/admin/tenants/${a.id}/lists/b_blocked/entries`,
    true,
  ],
};

describe('tenant isolation', () => {
  it('has an isolation case for every route registered under /v1, and no stale ones', () => {
    const routes = registeredRoutes(t.app);
    // The parser understands the tree: a few known routes at several depths.
    expect(routes).toEqual(
      expect.arrayContaining([
        'POST /v1/decisions',
        'POST /v1/decisions/batch',
        'DELETE /v1/admin/tenants/:tenant/keys/:key_id',
        'GET /healthz',
      ]),
    );
    const v1 = routes.filter((route) => route.split(' ')[1]?.startsWith('/v1/'));
    const withoutHead = v1.filter((route) => !route.startsWith('HEAD '));
    expect(withoutHead.filter((route) => !(route in table))).toEqual([]);
    expect(Object.keys(table).filter((route) => !withoutHead.includes(route))).toEqual([]);
    const heads = v1.filter((route) => route.startsWith('HEAD ')).map((route) => route.slice('HEAD '.length));
    expect(heads.filter((path) => !(path in headProbes))).toEqual([]);
    expect(Object.keys(headProbes).filter((path) => !heads.includes(path))).toEqual([]);
  });

  it.each(Object.keys(table))('%s: tenant A cannot read or change tenant B', async (route) => {
    await (table[route] as Case)();
  });

  it.each(Object.keys(headProbes))('HEAD %s answers like its GET and shows nothing of B', async (path) => {
    const [url, admin] = (headProbes[path] as () => [string, boolean])();
    const send = (method: 'GET' | 'HEAD') => (admin ? t.admin(method, url) : t.as(a.apiKey, method, url));
    const [get, head] = [await send('GET'), await send('HEAD')];
    expect(head.statusCode).toBe(get.statusCode);
    expect(head.body).toBe('');
    if (get.statusCode === 200) expectNothingOfB(get.body);
    else expect(get.statusCode).toBeGreaterThanOrEqual(400);
  });

  it('routes outside /v1 need no credentials and show no tenant data', async () => {
    const outside = registeredRoutes(t.app).filter((route) => !route.split(' ')[1]?.startsWith('/v1/'));
    expect(outside.length).toBeGreaterThan(0);
    for (const url of ['/healthz', '/readyz', '/metrics', '/docs/json']) {
      const response = await t.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expect(response.body).not.toContain(bData.account);
      expect(response.body).not.toContain('b-dec-1');
      expect(response.body).not.toContain(bData.decisions.get('b-dec-1'));
    }
  });

  it("leaves B's data intact after every attempt", async () => {
    await expectBIntact();
  });
});
