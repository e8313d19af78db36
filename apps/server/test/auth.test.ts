import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, startTestNode, type TestNode, type TestTenant } from './harness.js';
import { createKey, expectError, payment, raw, signedHeaders } from './support.js';

let t: TestNode;
let acme: TestTenant;
let other: TestTenant;
let seq = 0;
const nextId = () => `auth-${++seq}`;

beforeAll(async () => {
  t = await startTestNode();
  acme = await t.tenant('acme');
  other = await t.tenant('other');
});
afterAll(async () => {
  await t.close();
});

/** Sends a signed POST with exactly `body` as the bytes that were signed. */
function signedPost(
  key: Pick<TestTenant, 'keyId' | 'secret'>,
  url: string,
  body: string,
  timestamp?: number,
  extra: Record<string, string> = {},
) {
  return raw(
    t,
    'POST',
    url,
    { 'content-type': 'application/json', ...signedHeaders(key, body, timestamp), ...extra },
    body,
  );
}

const now = () => Math.floor(Date.now() / 1000);

/** Decisions of a tenant's log for one account, via its manage key. */
async function decisionIdsFor(apiKey: string, account: string): Promise<string[]> {
  const response = await t.as(apiKey, 'GET', `/v1/manage/decisions?entity=${encodeURIComponent(account)}`);
  expect(response.statusCode, response.body).toBe(200);
  return (response.json() as { decisions: { decision_id: string }[] }).decisions.map((d) => d.decision_id);
}

describe('bearer credentials', () => {
  const routes = [
    ['POST', '/v1/decisions'],
    ['POST', '/v1/decisions/batch'],
    ['POST', '/v1/events'],
    ['POST', '/v1/feedback'],
    ['GET', '/v1/manage/decisions'],
    ['GET', '/v1/manage/keys'],
    ['GET', '/v1/admin/tenants'],
    ['GET', '/v1/admin/audit'],
  ] as const;

  it.each(routes)('answers 401 missing_credentials without credentials on %s %s', async (method, url) => {
    const response = await t.app.inject({
      method,
      url,
      ...(method === 'POST' && { payload: payment(nextId()) }),
    });
    expectError(response, 401, 'missing_credentials');
  });

  it.each([
    ['an unknown token', 'Bearer nonsense'],
    ['an unknown key id', 'Bearer k_doesnotexist.c2VjcmV0'],
    ['a wrong secret for a real key id', 'key-wrong-secret'],
    ['a Basic scheme', 'Basic YWRtaW46YWRtaW4='],
    ['an empty bearer', 'Bearer '],
    ['a token with spaces', 'Bearer a b c'],
    ['an overlong token', `Bearer ${'x'.repeat(600)}`],
  ])('answers 401 invalid_credentials for %s', async (_name, header) => {
    const authorization = header === 'key-wrong-secret' ? `Bearer ${acme.keyId}.wrong` : header;
    for (const url of ['/v1/decisions', '/v1/manage/decisions', '/v1/admin/tenants']) {
      const response = await t.app.inject({
        method: url === '/v1/decisions' ? 'POST' : 'GET',
        url,
        headers: { authorization },
        ...(url === '/v1/decisions' && { payload: payment(nextId()) }),
      });
      expect(expectError(response, 401, 'invalid_credentials'), url).toBeDefined();
    }
  });

  it('accepts the bearer scheme case-insensitively', async () => {
    const response = await raw(
      t,
      'POST',
      '/v1/decisions',
      { authorization: `bearer ${acme.apiKey}`, 'content-type': 'application/json' },
      JSON.stringify(payment(nextId())),
    );
    expect(response.statusCode, response.body).toBe(200);
  });

  it('refuses the admin token on data-plane and manage routes', async () => {
    expectError(
      await t.as(adminToken, 'POST', '/v1/decisions', payment(nextId())),
      401,
      'invalid_credentials',
    );
    expectError(
      await t.as(adminToken, 'POST', '/v1/events', { events: [payment(nextId())] }),
      401,
      'invalid_credentials',
    );
    expectError(await t.as(adminToken, 'GET', '/v1/manage/decisions'), 401, 'invalid_credentials');
    expectError(await t.as(adminToken, 'GET', '/v1/manage/keys'), 401, 'invalid_credentials');
  });

  it('refuses API keys, even with both scopes, on admin routes', async () => {
    for (const [method, url] of [
      ['GET', '/v1/admin/tenants'],
      ['POST', '/v1/admin/tenants'],
      ['GET', `/v1/admin/tenants/${acme.id}`],
      ['GET', `/v1/admin/tenants/${acme.id}/decisions`],
      ['GET', '/v1/admin/audit'],
    ] as const) {
      const response = await t.as(acme.apiKey, method, url, method === 'POST' ? { name: 'x' } : undefined);
      expect(expectError(response, 401, 'invalid_credentials'), url).toBeDefined();
    }
  });
});

describe('scopes', () => {
  it('gives a decide-only key 403 insufficient_scope on /v1/manage routes', async () => {
    const key = await createKey(t, acme.id, ['decide']);
    expect((await t.as(key.apiKey, 'POST', '/v1/decisions', payment(nextId()))).statusCode).toBe(200);
    for (const [method, url, body] of [
      ['GET', '/v1/manage/decisions', undefined],
      ['GET', '/v1/manage/keys', undefined],
      ['POST', '/v1/manage/keys', { scopes: ['manage'] }],
      ['PUT', '/v1/manage/event-types/login', { fields: {} }],
      ['GET', '/v1/manage/audit', undefined],
    ] as const) {
      const response = await t.as(key.apiKey, method, url, body);
      expect(expectError(response, 403, 'insufficient_scope'), `${method} ${url}`).toBeDefined();
    }
  });

  it('gives a manage-only key 403 insufficient_scope on data-plane routes', async () => {
    const key = await createKey(t, acme.id, ['manage']);
    expect((await t.as(key.apiKey, 'GET', '/v1/manage/decisions')).statusCode).toBe(200);
    for (const [url, body] of [
      ['/v1/decisions', payment(nextId())],
      ['/v1/decisions/batch', { events: [payment(nextId())] }],
      ['/v1/events', { events: [payment(nextId())] }],
      ['/v1/feedback', { event_id: 'x', label: 'fraud' }],
    ] as const) {
      const response = await t.as(key.apiKey, 'POST', url, body);
      expect(expectError(response, 403, 'insufficient_scope'), url).toBeDefined();
    }
  });

  it('gives a manage-only key 403 on a signed data-plane request too', async () => {
    const key = await createKey(t, acme.id, ['manage']);
    const response = await signedPost(key, '/v1/decisions', JSON.stringify(payment(nextId())));
    expectError(response, 403, 'insufficient_scope');
  });
});

describe('revocation', () => {
  it('stops a key revoked by the admin at once', async () => {
    const key = await createKey(t, acme.id, ['decide', 'manage']);
    expect((await t.as(key.apiKey, 'POST', '/v1/decisions', payment(nextId()))).statusCode).toBe(200);
    const revoke = await t.admin('DELETE', `/v1/admin/tenants/${acme.id}/keys/${key.keyId}`);
    expect(revoke.statusCode).toBe(204);
    expectError(
      await t.as(key.apiKey, 'POST', '/v1/decisions', payment(nextId())),
      401,
      'invalid_credentials',
    );
    expectError(await t.as(key.apiKey, 'GET', '/v1/manage/decisions'), 401, 'invalid_credentials');
    expectError(
      await signedPost(key, '/v1/decisions', JSON.stringify(payment(nextId()))),
      401,
      'invalid_credentials',
    );
    // Revoking twice is harmless; the key stays listed as revoked.
    expect((await t.admin('DELETE', `/v1/admin/tenants/${acme.id}/keys/${key.keyId}`)).statusCode).toBe(204);
    const keys = (await t.admin('GET', `/v1/admin/tenants/${acme.id}/keys`)).json() as {
      keys: { key_id: string; revoked_at: string | null }[];
    };
    expect(keys.keys.find((k) => k.key_id === key.keyId)?.revoked_at).toEqual(expect.any(String));
  });

  it('stops a key revoked by a manage key of the same tenant at once, signed requests included', async () => {
    const key = await createKey(t, acme.id, ['decide']);
    const body = JSON.stringify(payment(nextId()));
    expect((await signedPost(key, '/v1/decisions', body)).statusCode).toBe(200);
    expect((await t.as(acme.apiKey, 'DELETE', `/v1/manage/keys/${key.keyId}`)).statusCode).toBe(204);
    expectError(
      await signedPost(key, '/v1/decisions', JSON.stringify(payment(nextId()))),
      401,
      'invalid_credentials',
    );
    expectError(
      await t.as(key.apiKey, 'POST', '/v1/decisions', payment(nextId())),
      401,
      'invalid_credentials',
    );
  });

  it('never shows a secret again after creation', async () => {
    const key = await createKey(t, acme.id, ['decide']);
    for (const url of [`/v1/admin/tenants/${acme.id}/keys`, '/v1/manage/keys']) {
      const response =
        url === '/v1/manage/keys' ? await t.as(acme.apiKey, 'GET', url) : await t.admin('GET', url);
      expect(response.statusCode).toBe(200);
      expect(response.body).toContain(key.keyId);
      expect(response.body).not.toContain(key.secret);
      expect(response.body).not.toMatch(/secret/i);
    }
  });
});

describe('signed requests', () => {
  it('accepts a correctly signed decision and puts it in the key tenant', async () => {
    const account = `signed-${nextId()}`;
    const body = JSON.stringify(payment(nextId(), { account_id: account }));
    const response = await signedPost(acme, '/v1/decisions', body);
    expect(response.statusCode, response.body).toBe(200);
    const decision = response.json() as { decision_id: string };
    expect(await decisionIdsFor(acme.apiKey, account)).toEqual([decision.decision_id]);
    expect(await decisionIdsFor(other.apiKey, account)).toEqual([]);
  });

  it('accepts a signed request on every data-plane route and a signed GET with an empty body', async () => {
    const eventId = nextId();
    for (const [url, body] of [
      ['/v1/decisions/batch', { events: [payment(nextId())] }],
      ['/v1/events', { events: [payment(eventId)] }],
      ['/v1/feedback', { event_id: eventId, label: 'legit' }],
    ] as const) {
      const response = await signedPost(acme, url, JSON.stringify(body));
      expect(response.statusCode, `${url} ${response.body}`).toBeLessThan(300);
    }
    const get = await raw(t, 'GET', '/v1/manage/decisions?verdict=accept', signedHeaders(acme, ''));
    expect(get.statusCode, get.body).toBe(200);
  });

  it('accepts timestamps within the 300 s window either way', async () => {
    for (const offset of [-290, -60, 0, 60, 290]) {
      const response = await signedPost(
        acme,
        '/v1/decisions',
        JSON.stringify(payment(nextId())),
        now() + offset,
      );
      expect(response.statusCode, `offset ${offset}: ${response.body}`).toBe(200);
    }
  });

  it.each([
    ['301 s old', -301],
    ['301 s in the future', 301],
    ['an hour old', -3600],
    ['a day in the future', 86_400],
  ])('refuses a timestamp %s with 401 signature_expired', async (_name, offset) => {
    const response = await signedPost(
      acme,
      '/v1/decisions',
      JSON.stringify(payment(nextId())),
      now() + offset,
    );
    expectError(response, 401, 'signature_expired');
  });

  it.each(['abc', '', '-5', '1.5', '9'.repeat(20), '0x10'])(
    'refuses the timestamp %j with 401',
    async (timestamp) => {
      const body = JSON.stringify(payment(nextId()));
      const headers = { ...signedHeaders(acme, body), 'x-vigil-timestamp': timestamp };
      const response = await raw(
        t,
        'POST',
        '/v1/decisions',
        { 'content-type': 'application/json', ...headers },
        body,
      );
      expect(response.statusCode, response.body).toBe(401);
      expect(['signature_expired', 'invalid_credentials']).toContain(
        (response.json() as { error: { code: string } }).error.code,
      );
    },
  );

  it('refuses the same signed request the second time with 401 signature_replayed', async () => {
    const body = JSON.stringify(payment(nextId()));
    const timestamp = now();
    const first = await signedPost(acme, '/v1/decisions', body, timestamp);
    expect(first.statusCode, first.body).toBe(200);
    expectError(await signedPost(acme, '/v1/decisions', body, timestamp), 401, 'signature_replayed');
    // Upper-case hex is the same signature, so it is a replay too.
    const headers = signedHeaders(acme, body, timestamp);
    const upper = { ...headers, 'x-vigil-signature': (headers['x-vigil-signature'] as string).toUpperCase() };
    const again = await raw(
      t,
      'POST',
      '/v1/decisions',
      { 'content-type': 'application/json', ...upper },
      body,
    );
    expectError(again, 401, 'signature_replayed');
  });

  it('refuses wrong signatures with 401 invalid_credentials', async () => {
    const body = JSON.stringify(payment(nextId()));
    const timestamp = now();
    const good = signedHeaders(acme, body, timestamp);
    const cases: [string, Record<string, string>][] = [
      ['another body', signedHeaders(acme, JSON.stringify(payment(nextId())), timestamp)],
      [
        'another timestamp',
        { ...signedHeaders(acme, body, timestamp - 1), 'x-vigil-timestamp': String(timestamp) },
      ],
      ['another secret', { ...signedHeaders(other, body, timestamp), 'x-vigil-key': acme.keyId }],
      ['not hex', { ...good, 'x-vigil-signature': 'z'.repeat(64) }],
      ['too short', { ...good, 'x-vigil-signature': (good['x-vigil-signature'] as string).slice(0, 62) }],
      ['empty', { ...good, 'x-vigil-signature': '' }],
      ['unknown key id', { ...good, 'x-vigil-key': 'k_nope' }],
      ['missing signature', { 'x-vigil-key': acme.keyId, 'x-vigil-timestamp': String(timestamp) }],
      [
        'missing timestamp',
        { 'x-vigil-key': acme.keyId, 'x-vigil-signature': good['x-vigil-signature'] as string },
      ],
    ];
    for (const [name, headers] of cases) {
      const response = await raw(
        t,
        'POST',
        '/v1/decisions',
        { 'content-type': 'application/json', ...headers },
        body,
      );
      expect(expectError(response, 401, 'invalid_credentials'), name).toBeDefined();
    }
  });

  it('signs the exact bytes: re-serialised JSON with the same meaning does not verify', async () => {
    const event = payment(nextId());
    const signedBody = JSON.stringify(event);
    const sentBody = JSON.stringify(event, null, 2);
    const headers = signedHeaders(acme, signedBody);
    const response = await raw(
      t,
      'POST',
      '/v1/decisions',
      { 'content-type': 'application/json', ...headers },
      sentBody,
    );
    expectError(response, 401, 'invalid_credentials');
  });
});

describe('the tenant comes from the credential', () => {
  it('refuses a decision body that names a tenant, and decides in the key tenant otherwise', async () => {
    const account = `tenantless-${nextId()}`;
    const withTenant = { ...payment(nextId(), { account_id: account }), tenant: other.id };
    const refused = expectError(
      await t.as(acme.apiKey, 'POST', '/v1/decisions', withTenant),
      422,
      'invalid_event',
    );
    expect(refused.error.details?.map((detail) => detail.path)).toEqual(['tenant']);
    const withTenantId = { ...payment(nextId(), { account_id: account }), tenant_id: other.id };
    expectError(await t.as(acme.apiKey, 'POST', '/v1/decisions', withTenantId), 422, 'invalid_event');
    expect(await decisionIdsFor(other.apiKey, account)).toEqual([]);

    const accepted = await t.app.inject({
      method: 'POST',
      url: `/v1/decisions?tenant=${other.id}`,
      headers: { authorization: `Bearer ${acme.apiKey}`, 'x-vigil-tenant': other.id },
      payload: payment(nextId(), { account_id: account }),
    });
    expect(accepted.statusCode, accepted.body).toBe(200);
    const decisionId = (accepted.json() as { decision_id: string }).decision_id;
    expect(await decisionIdsFor(acme.apiKey, account)).toEqual([decisionId]);
    expect(await decisionIdsFor(other.apiKey, account)).toEqual([]);
  });

  it('refuses a tenant in batch items and in reported events', async () => {
    const batch = await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', {
      events: [{ ...payment(nextId()), tenant: other.id }],
    });
    expectError(batch, 422, 'invalid_event');
    const events = await t.as(acme.apiKey, 'POST', '/v1/events', {
      events: [{ ...payment(nextId()), tenant: other.id }],
    });
    expectError(events, 422, 'invalid_event');
    const feedback = await t.as(acme.apiKey, 'POST', '/v1/feedback', {
      event_id: 'x',
      label: 'fraud',
      tenant: other.id,
    });
    // Feedback bodies are not events: they are refused as route-schema mismatches (400 invalid_request).
    expect(feedback.statusCode, feedback.body).toBeGreaterThanOrEqual(400);
    expect(feedback.statusCode).toBeLessThan(500);
    expect(feedback.json()).toMatchObject({ error: { details: [{ path: 'tenant' }] } });
  });

  it('prefers the bearer credential when a request carries both kinds', async () => {
    const body = JSON.stringify(payment(nextId()));
    const response = await raw(
      t,
      'POST',
      '/v1/decisions',
      {
        'content-type': 'application/json',
        authorization: `Bearer ${acme.apiKey}`,
        ...signedHeaders(other, 'not the body'),
      },
      body,
    );
    expect(response.statusCode, response.body).toBe(200);
  });
});
