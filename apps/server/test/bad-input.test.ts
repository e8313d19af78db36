import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { errorCodes } from '@vigil/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, startTestNode, type TestNode, type TestTenant } from './harness.js';
import { detailPaths, expectError, expectWellFormedError, payment, prng, raw } from './support.js';

let t: TestNode;
let acme: TestTenant;
let json: Record<string, string>;
let seq = 0;
const nextId = (prefix = 'evt') => `${prefix}-${++seq}`;

beforeAll(async () => {
  t = await startTestNode();
  acme = await t.tenant('acme');
  json = { authorization: `Bearer ${acme.apiKey}`, 'content-type': 'application/json' };
});
afterAll(async () => {
  await t.close();
});

const decide = (body: unknown) => t.as(acme.apiKey, 'POST', '/v1/decisions', body);
const decideRaw = (payload: string | Buffer, headers: Record<string, string> = {}) =>
  raw(t, 'POST', '/v1/decisions', { ...json, ...headers }, payload);

/** `{ "a": { "a": ... } }` with `depth` objects in all. */
function nestedObjects(depth: number): unknown {
  let value: unknown = 1;
  for (let level = 0; level < depth; level++) value = { a: value };
  return value;
}

describe('malformed bodies', () => {
  it.each([
    ['truncated object', '{"type": "payment", "id": "x"'],
    ['trailing comma', '{"type": "payment",}'],
    ['single quotes', "{'type': 'payment'}"],
    ['bare word', 'payment'],
    ['NaN literal', '{"n": NaN}'],
    ['two documents', '{} {}'],
    ['comment', '{} // hi'],
  ])('answers 400 malformed_json for %s', async (_name, body) => {
    expectError(await decideRaw(body), 400, 'malformed_json');
  });

  it('answers 400 malformed_json for an empty body with a JSON content type', async () => {
    expectError(await decideRaw(''), 400, 'malformed_json');
    expectError(await raw(t, 'POST', '/v1/events', json, ''), 400, 'malformed_json');
    expectError(
      await raw(t, 'POST', '/v1/admin/tenants', { ...json, authorization: `Bearer ${adminToken}` }, ''),
      400,
      'malformed_json',
    );
  });

  it.each([
    ['a JSON array', []],
    ['a JSON string', 'payment'],
    ['a JSON number', 42],
    ['JSON null', null],
  ])('answers 422 invalid_event for %s as the body', async (_name, body) => {
    expectError(await decideRaw(JSON.stringify(body)), 422, 'invalid_event');
  });
});

describe('the event envelope', () => {
  it('lists every envelope error, one per bad property', async () => {
    const body = expectError(
      await decide({ type: 5, id: '', fields: 'x', timeout_ms: 1, extra: true }),
      422,
      'invalid_event',
    );
    expect(new Set(detailPaths(body))).toEqual(new Set(['type', 'id', 'fields', 'timeout_ms', 'extra']));
  });

  it.each([
    ['type', { id: 'x', fields: {} }],
    ['id', { type: 'payment', fields: {} }],
    ['fields', { type: 'payment', id: 'x' }],
  ])('refuses a missing %s with 422 invalid_event naming it', async (path, body) => {
    const error = expectError(await decide(body), 422, 'invalid_event');
    expect(detailPaths(error)).toEqual([path]);
  });

  it('refuses an unknown top-level property', async () => {
    const error = expectError(
      await decide({ ...payment(nextId()), tenant: 't_other' }),
      422,
      'invalid_event',
    );
    expect(detailPaths(error)).toEqual(['tenant']);
  });

  it('refuses an id longer than 128 characters and an envelope timestamp that is not RFC 3339', async () => {
    expectError(await decide(payment('x'.repeat(129))), 422, 'invalid_event');
    const error = expectError(
      await decide({ ...payment(nextId()), timestamp: 'yesterday' }),
      422,
      'invalid_event',
    );
    expect(detailPaths(error)).toEqual(['timestamp']);
  });

  it('answers 422 unknown_event_type for a type the tenant has not defined', async () => {
    const error = expectError(
      await decide({ type: 'withdrawal', id: nextId(), fields: {} }),
      422,
      'unknown_event_type',
    );
    expect(detailPaths(error)).toEqual(['type']);
    const batch = await t.as(acme.apiKey, 'POST', '/v1/events', {
      events: [{ type: 'withdrawal', id: nextId(), fields: {} }],
    });
    expect(batch.statusCode).toBe(202);
    expect(batch.json()).toMatchObject({
      accepted: 0,
      rejected: 1,
      results: [{ error: { code: 'unknown_event_type' } }],
    });
  });

  it.each([4, 0, -1, 5001, 100_000, 7.5])('refuses timeout_ms %s with 422 invalid_event', async (timeout) => {
    const error = expectError(
      await decide({ ...payment(nextId()), timeout_ms: timeout }),
      422,
      'invalid_event',
    );
    expect(detailPaths(error)).toEqual(['timeout_ms']);
  });

  it('refuses timeout_ms given as a string (no type coercion)', async () => {
    const error = expectError(await decide({ ...payment(nextId()), timeout_ms: '50' }), 422, 'invalid_event');
    expect(detailPaths(error)).toEqual(['timeout_ms']);
  });

  it.each([5, 50, 5000])('accepts timeout_ms %s', async (timeout) => {
    const response = await decide({ ...payment(nextId()), timeout_ms: timeout });
    expect(response.statusCode, response.body).toBe(200);
  });

  it('refuses a batch-level timeout_ms out of range on /v1/decisions/batch', async () => {
    const response = await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', {
      events: [payment(nextId())],
      timeout_ms: 5001,
    });
    const error = expectError(response, 422, 'invalid_event');
    expect(detailPaths(error)).toEqual(['timeout_ms']);
  });
});

describe('event fields against the schema', () => {
  const valid = {
    account_id: 'u-1',
    amount: 12.5,
    count: 3,
    ip: '2001:db8::1',
    email: 'a.b@example.com',
    phone: '+14155550123',
    at: '2026-11-24T12:00:00.123+01:00',
    channel: 'web',
    trusted: false,
    tags: ['a', 'b'],
  };

  it('accepts a valid value of every field type, and null for an optional field', async () => {
    expect((await decide({ type: 'payment', id: nextId(), fields: valid })).statusCode).toBe(200);
    const withNull = await decide({
      type: 'payment',
      id: nextId(),
      fields: { account_id: 'u', amount: null },
    });
    expect(withNull.statusCode, withNull.body).toBe(200);
  });

  const invalid: [field: string, value: unknown][] = [
    ['account_id', 5],
    ['account_id', true],
    ['account_id', { nested: 'x' }],
    ['account_id', 'x'.repeat(4097)],
    ['amount', '12.5'],
    ['amount', true],
    ['amount', [1]],
    ['count', 1.5],
    ['count', 2 ** 60],
    ['count', '3'],
    ['ip', '999.1.1.1'],
    ['ip', 'localhost'],
    ['ip', '10.0.0.0/8'],
    ['ip', 167772161],
    ['email', 'nope'],
    ['email', 'a@b'],
    ['email', 'a b@example.com'],
    ['email', `${'x'.repeat(250)}@example.com`],
    ['phone', '4155550123'],
    ['phone', '+0123456789'],
    ['phone', '+1 415 555 0123'],
    ['phone', 14155550123],
    ['at', '2026-11-24'],
    ['at', '2026-11-24T12:00:00'],
    ['at', 'yesterday'],
    ['at', '2026-13-45T99:00:00Z'],
    ['at', 1_700_000_000],
    ['channel', 'desktop'],
    ['channel', 'WEB'],
    ['channel', 1],
    ['trusted', 'true'],
    ['trusted', 1],
    ['tags', 'a'],
    ['tags', [1, 2]],
    ['tags', [['a']]],
    ['tags', Array.from({ length: 1001 }, (_, i) => `t${i}`)],
  ];

  const labelled = invalid.map(
    ([field, value]) => [field, JSON.stringify(value).slice(0, 40), value] as const,
  );
  it.each(labelled)(
    'refuses %s = %s with 422 invalid_event at fields.<name>',
    async (field, _label, value) => {
      const error = expectError(
        await decide({ type: 'payment', id: nextId(), fields: { ...valid, [field]: value } }),
        422,
        'invalid_event',
      );
      expect(detailPaths(error)).toEqual([`fields.${field}`]);
    },
  );

  it('refuses a number that overflows to Infinity', async () => {
    const body = `{"type":"payment","id":"${nextId()}","fields":{"account_id":"u","amount":1e400}}`;
    const error = expectError(await decideRaw(body), 422, 'invalid_event');
    expect(detailPaths(error)).toEqual(['fields.amount']);
  });

  it('lists every field error at once, one per bad field', async () => {
    const error = expectError(
      await decide({
        type: 'payment',
        id: nextId(),
        fields: {
          amount: 'x',
          count: 0.5,
          ip: 'nope',
          email: 'nope',
          phone: 'nope',
          at: 'nope',
          channel: 'nope',
          trusted: 'nope',
          tags: 'nope',
          unknown_field: 1,
        },
      }),
      422,
      'invalid_event',
    );
    expect(detailPaths(error)).toEqual(
      [
        'fields.account_id',
        'fields.amount',
        'fields.count',
        'fields.ip',
        'fields.email',
        'fields.phone',
        'fields.at',
        'fields.channel',
        'fields.trusted',
        'fields.tags',
        'fields.unknown_field',
      ].sort(),
    );
    for (const detail of error.error.details ?? []) expect(detail.message.length).toBeGreaterThan(0);
  });

  it('refuses a missing required field', async () => {
    const error = expectError(
      await decide({ type: 'payment', id: nextId(), fields: { amount: 1 } }),
      422,
      'invalid_event',
    );
    expect(error.error.details).toEqual([{ path: 'fields.account_id', message: expect.any(String) }]);
  });

  it('refuses an unknown field', async () => {
    const error = expectError(
      await decide({ type: 'payment', id: nextId(), fields: { account_id: 'u', colour: 'red' } }),
      422,
      'invalid_event',
    );
    expect(detailPaths(error)).toEqual(['fields.colour']);
  });

  it('validates events on /v1/events the same way, per item', async () => {
    const response = await t.as(acme.apiKey, 'POST', '/v1/events', {
      events: [
        { type: 'payment', id: nextId(), fields: { account_id: 'u', amount: 'x' } },
        { type: 'payment', id: nextId(), fields: { account_id: 'u' } },
      ],
    });
    expect(response.statusCode).toBe(202);
    const body = response.json() as {
      accepted: number;
      rejected: number;
      results: { error?: { code: string; details: { path: string }[] } }[];
    };
    expect(body.accepted).toBe(1);
    expect(body.rejected).toBe(1);
    expect(body.results[0]?.error?.code).toBe('invalid_event');
    expect(body.results[0]?.error?.details.map((detail) => detail.path)).toEqual(['fields.amount']);
  });
});

describe('body size and encodings', () => {
  const oversized = () => JSON.stringify(payment(nextId(), { account_id: 'x'.repeat(70 * 1024) }));

  it('answers 413 payload_too_large above the 64 KiB default', async () => {
    expectError(await decideRaw(oversized()), 413, 'payload_too_large');
    expectError(
      await raw(t, 'POST', '/v1/feedback', json, JSON.stringify({ event_id: 'x', note: 'y'.repeat(70_000) })),
      413,
      'payload_too_large',
    );
  });

  it('answers 413 for a small gzip body that is over the limit once decompressed', async () => {
    const compressed = gzipSync(Buffer.from(oversized()));
    expect(compressed.length).toBeLessThan(4096);
    expectError(await decideRaw(compressed, { 'content-encoding': 'gzip' }), 413, 'payload_too_large');
  });

  it('answers 413 for a zip bomb of zeros, without reading it all', async () => {
    const compressed = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
    expectError(await decideRaw(compressed, { 'content-encoding': 'gzip' }), 413, 'payload_too_large');
  });

  it.each([
    ['gzip', gzipSync],
    ['x-gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ] as const)('accepts a valid %s body', async (encoding, compress) => {
    const id = nextId();
    const response = await decideRaw(compress(Buffer.from(JSON.stringify(payment(id)))), {
      'content-encoding': encoding,
    });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({ event_id: id, verdict: 'accept' });
  });

  it.each(['compress', 'zstd', 'gzip, br', 'bogus'])(
    'answers 415 unsupported_encoding for Content-Encoding %s',
    async (encoding) => {
      expectError(
        await decideRaw(JSON.stringify(payment(nextId())), { 'content-encoding': encoding }),
        415,
        'unsupported_encoding',
      );
    },
  );

  it('answers a 4xx for a body that claims gzip but is not', async () => {
    const response = await decideRaw('this is not gzip', { 'content-encoding': 'gzip' });
    expectWellFormedError(response);
    expect(response.statusCode).toBe(400);
    const truncated = gzipSync(Buffer.from(JSON.stringify(payment(nextId())))).subarray(0, 20);
    expect((await decideRaw(truncated, { 'content-encoding': 'gzip' })).statusCode).toBe(400);
  });

  it.each([
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/xml',
  ])('answers 415 unsupported_media_type for Content-Type %s', async (contentType) => {
    expectError(
      await decideRaw(JSON.stringify(payment(nextId())), { 'content-type': contentType }),
      415,
      'unsupported_media_type',
    );
  });

  it('answers 415 unsupported_media_type for a body without a Content-Type', async () => {
    const response = await raw(
      t,
      'POST',
      '/v1/decisions',
      { authorization: `Bearer ${acme.apiKey}` },
      Buffer.from(JSON.stringify(payment(nextId()))),
    );
    expectError(response, 415, 'unsupported_media_type');
  });

  it('accepts application/json with a charset', async () => {
    const response = await decideRaw(JSON.stringify(payment(nextId())), {
      'content-type': 'application/json; charset=utf-8',
    });
    expect(response.statusCode, response.body).toBe(200);
  });
});

describe('hostile JSON shapes', () => {
  it('answers 400 nesting_too_deep above 32 levels, and accepts 32', async () => {
    // The body object is level 1 and `fields` level 2: 30 more objects make 32 levels.
    const atLimit = await decide(payment(nextId(), { deep: nestedObjects(30) }));
    expect(expectError(atLimit, 422, 'invalid_event').error.details?.[0]?.path).toBe('fields.deep');
    expectError(await decide(payment(nextId(), { deep: nestedObjects(31) })), 400, 'nesting_too_deep');
    expectError(await decideRaw(`${'['.repeat(40)}${']'.repeat(40)}`), 400, 'nesting_too_deep');
    expectError(await decideRaw(`${'['.repeat(20_000)}${']'.repeat(20_000)}`), 400, 'nesting_too_deep');
  });

  const forbidden: [where: string, body: string][] = [
    ['top-level __proto__', '{"__proto__":{"admin":true},"type":"payment","id":"p1","fields":{}}'],
    ['__proto__ in fields', '{"type":"payment","id":"p2","fields":{"account_id":"u","__proto__":{"x":1}}}'],
    ['__proto__ in an array', '{"type":"payment","id":"p3","fields":{"tags":[{"__proto__":null}]}}'],
    ['top-level constructor', '{"constructor":{"prototype":{}},"type":"payment","id":"p4","fields":{}}'],
    ['constructor in fields', '{"type":"payment","id":"p5","fields":{"account_id":"u","constructor":1}}'],
    ['deep constructor', '{"type":"payment","id":"p6","fields":{"a":{"b":{"c":[{"constructor":1}]}}}}'],
    ['prototype key', '{"type":"payment","id":"p7","fields":{"prototype":1}}'],
    ['escaped __proto__', '{"type":"payment","id":"p8","fields":{"\\u005f_proto__":{"x":1}}}'],
    ['escaped constructor', '{"type":"payment","id":"p9","fields":{"constr\\u0075ctor":1}}'],
  ];

  it.each(forbidden)('answers 400 forbidden_key for %s', async (_where, body) => {
    expectError(await decideRaw(body), 400, 'forbidden_key');
  });

  it('refuses forbidden keys on every JSON route, data plane and control plane', async () => {
    const hostile = '{"__proto__":{"polluted":true}}';
    const manage = { ...json };
    const admin = { ...json, authorization: `Bearer ${adminToken}` };
    const cases: [string, string, Record<string, string>][] = [
      ['POST', '/v1/decisions/batch', json],
      ['POST', '/v1/events', json],
      ['POST', '/v1/feedback', json],
      ['POST', '/v1/manage/keys', manage],
      ['PUT', '/v1/manage/event-types/x', manage],
      ['POST', '/v1/admin/tenants', admin],
      ['PATCH', `/v1/admin/tenants/${acme.id}`, admin],
      ['PUT', `/v1/admin/tenants/${acme.id}/event-types/x`, admin],
    ];
    for (const [method, url, headers] of cases) {
      const response = await raw(t, method as 'POST', url, headers, hostile);
      expect(expectError(response, 400, 'forbidden_key'), `${method} ${url}`).toBeDefined();
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('batches', () => {
  it('refuses more than 1,000 events with 422 invalid_event', async () => {
    const events = Array.from({ length: 1001 }, () => payment(nextId('big')));
    const decisions = await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', { events });
    expect(detailPaths(expectError(decisions, 422, 'invalid_event'))).toEqual(['events']);
    const reported = await t.as(acme.apiKey, 'POST', '/v1/events', { events });
    expect(detailPaths(expectError(reported, 422, 'invalid_event'))).toEqual(['events']);
  });

  it('accepts exactly 1,000 events', async () => {
    const events = Array.from({ length: 1000 }, () => payment(nextId('max')));
    const response = await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', { events });
    expect(response.statusCode).toBe(200);
    expect((response.json() as { decisions: unknown[] }).decisions).toHaveLength(1000);
  });

  it('refuses an empty batch and a batch that is not a list', async () => {
    expectError(await t.as(acme.apiKey, 'POST', '/v1/decisions/batch', { events: [] }), 422, 'invalid_event');
    expectError(await t.as(acme.apiKey, 'POST', '/v1/events', { events: {} }), 422, 'invalid_event');
    expectError(await t.as(acme.apiKey, 'POST', '/v1/events', {}), 422, 'invalid_event');
  });
});

describe('routes and other request parts', () => {
  it.each([
    ['GET', '/nope'],
    ['GET', '/v1'],
    ['POST', '/v1/decision'],
    ['GET', '/v1/decisions'],
    ['DELETE', '/v1/events'],
    ['GET', '/v1/manage/nope'],
    ['PUT', '/v1/admin/tenants'],
  ] as const)('answers 404 not_found for %s %s', async (method, url) => {
    expectError(await t.as(acme.apiKey, method, url), 404, 'not_found');
  });

  it('answers 400 invalid_request for bad query strings and path parameters', async () => {
    const bad = [
      '/v1/manage/decisions?verdict=maybe',
      '/v1/manage/decisions?from=yesterday',
      '/v1/manage/decisions?to=2026-13-01T00:00:00Z',
      '/v1/manage/decisions?limit=0',
      '/v1/manage/decisions?limit=abc',
      '/v1/manage/decisions?entity=',
      '/v1/manage/decisions?unknown=1',
      `/v1/manage/decisions/${'x'.repeat(65)}`,
      `/v1/manage/event-types/${'x'.repeat(65)}`,
    ];
    for (const url of bad) {
      const response = await t.as(acme.apiKey, 'GET', url);
      expect(expectError(response, 400, 'invalid_request'), url).toBeDefined();
    }
    const badType = await t.as(acme.apiKey, 'PUT', '/v1/manage/event-types/has-dash', { fields: {} });
    expectError(badType, 400, 'invalid_request');
  });

  /** Requests whose answer is not the Vigil error shape with a registered code, as `url -> body`. */
  async function nonConforming(requests: [method: 'GET' | 'DELETE', url: string, admin: boolean][]) {
    const wrong: string[] = [];
    for (const [method, url, admin] of requests) {
      const response = admin ? await t.admin(method, url) : await t.as(acme.apiKey, method, url);
      const body = response.json() as { error?: { code?: unknown } };
      const registered = (errorCodes as Record<string, { status: number }>)[String(body.error?.code)];
      if (registered?.status !== response.statusCode || response.statusCode >= 500) {
        wrong.push(`${method} ${url.slice(0, 60)} -> ${response.statusCode} ${response.body.slice(0, 80)}`);
      }
    }
    return wrong;
  }

  // Fastify refuses these before routing (FST_ERR_BAD_URL), bypassing the app's error handler.
  it('answers malformed percent-encoding in the path in the Vigil error shape', async () => {
    const segments = ['%ff', '%', '%zz', '%E0%A4%A', '%C0%AF'];
    const wrong = await nonConforming(
      segments.map((segment) => ['GET', `/v1/manage/decisions/${segment}`, false] as const),
    );
    expect(wrong).toEqual([]);
  });

  // Fastify refuses these before routing (FST_ERR_MAX_PARAM_LENGTH, 414), bypassing the error handler.
  it('answers a path parameter over 100 characters in the Vigil error shape with a registered code', async () => {
    const long = 'x'.repeat(101);
    const wrong = await nonConforming([
      ['GET', `/v1/manage/decisions/${long}`, false],
      ['DELETE', `/v1/manage/keys/${long}`, false],
      ['GET', `/v1/admin/tenants/${long}`, true],
    ]);
    expect(wrong).toEqual([]);
  });

  it('refuses invalid configuration with 422 invalid_config and every error', async () => {
    const response = await t.as(acme.apiKey, 'PUT', '/v1/manage/event-types/login', {
      fields: { ok: { type: 'string' }, bad: { type: 'colour' }, level: { type: 'enum' } },
      extra: 1,
    });
    const error = expectError(response, 422, 'invalid_config');
    expect(detailPaths(error)).toEqual(expect.arrayContaining(['extra']));
    expect(detailPaths(error).some((path) => path.startsWith('fields.bad'))).toBe(true);
    const enumWithoutValues = await t.as(acme.apiKey, 'PUT', '/v1/manage/event-types/login', {
      fields: { level: { type: 'enum' } },
    });
    expect(detailPaths(expectError(enumWithoutValues, 422, 'invalid_config'))).toEqual([
      'fields.level.values',
    ]);
    expectError(await t.admin('POST', '/v1/admin/tenants', { name: '' }), 422, 'invalid_config');
    expectError(
      await t.as(acme.apiKey, 'POST', '/v1/manage/keys', { scopes: ['root'] }),
      422,
      'invalid_config',
    );
  });
});

describe('deterministic fuzz: hostile bodies never yield a 5xx', () => {
  const random = prng(0x5eed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const int = (max: number) => Math.floor(random() * max);

  const strings = [
    '',
    'payment',
    '\u0000',
    '\ud800',
    '\udfff\ud800',
    '😀'.repeat(50),
    'ﷺ'.repeat(20),
    '\u202e\u200b',
    'a'.repeat(5000),
    '../../etc/passwd',
    "'; DROP TABLE records; --",
    '%00%ff',
    ['$', '{process.exit()}'].join(''),
    '__proto__',
    '1e309',
  ];
  const numbers = [
    0,
    -0,
    1,
    -1,
    0.5,
    2 ** 53 + 1,
    -(2 ** 63),
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    1e308,
    123456789012345680000,
  ];

  function randomValue(depth: number): unknown {
    const kind = depth > 4 ? int(4) : int(7);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return random() < 0.5;
      case 2:
        return pick(numbers);
      case 3:
        return pick(strings);
      case 4:
        return Array.from({ length: int(5) }, () => randomValue(depth + 1));
      default: {
        const keys = ['type', 'id', 'fields', 'events', 'event_id', 'label', 'scopes', 'name', 'timeout_ms'];
        const value: Record<string, unknown> = {};
        for (let i = int(5); i > 0; i--)
          value[random() < 0.7 ? pick(keys) : pick(strings)] = randomValue(depth + 1);
        return value;
      }
    }
  }

  /** A plausible event with one part broken. */
  function mutatedEvent(): unknown {
    const event: Record<string, unknown> = {
      type: pick(['payment', 'payment', 'login', '', 'x'.repeat(65)]),
      id: pick([`fz-${int(50)}`, '', 'x'.repeat(200), '\u0000']),
      fields: {
        account_id: pick(['u-1', 7, null, ['u'], { u: 1 }]),
        amount: pick([1, -1e308, '1', null, [], {}]),
        count: pick([1, 1.1, 2 ** 60, -3]),
        ip: pick(['1.2.3.4', '::1', '1.2.3', 'fe80::1%eth0', '']),
        channel: pick(['web', 'app', 'other']),
        tags: pick([[], ['a'], [1], 'a']),
      },
    };
    if (random() < 0.3) event.timeout_ms = pick([-1, 0, 5, 5000, 1e9, '5', null]);
    if (random() < 0.2) event.timestamp = pick(['2026-01-01T00:00:00Z', 'now', '', 0]);
    if (random() < 0.2) delete event[pick(['type', 'id', 'fields'])];
    return event;
  }

  /** A body as bytes: JSON of a generated value, or something that is not JSON at all. */
  function hostileBody(index: number): Buffer {
    switch (index % 10) {
      case 0:
        return Buffer.from(Array.from({ length: int(300) }, () => int(256)));
      case 1:
        return Buffer.from(
          pick([
            '1e999999',
            '-1e999999',
            '123456789012345678901234567890123456789',
            '{"id":1e999999}',
            '{"type":"payment","id":"n","fields":{"amount":-0.0e-999}}',
          ]),
        );
      case 2:
        return Buffer.from(`${'['.repeat(1 + int(3000))}${random() < 0.5 ? ']'.repeat(int(3000)) : ''}`);
      case 3:
        return Buffer.from(
          JSON.stringify(
            pick([
              { events: Array.from({ length: int(4) }, mutatedEvent) },
              { events: mutatedEvent() },
              { events: [[[]]] },
              { event_id: pick(strings), label: pick(['fraud', 'legit', 'maybe', 1]) },
            ]),
          ),
        );
      case 4:
        return Buffer.from(JSON.stringify(randomValue(0)));
      case 5:
        return Buffer.from(
          `{"type":"payment","id":"u${index}","fields":{"account_id":"\\ud800\\udc00\\u0000"}}`,
        );
      case 6:
        return Buffer.from(`{"a":${'{"a":'.repeat(int(60))}1${'}'.repeat(int(60))}}`);
      case 7:
        return Buffer.from(JSON.stringify(randomValue(0)).slice(0, int(40)));
      default:
        return Buffer.from(JSON.stringify(mutatedEvent()));
    }
  }

  const contentTypes = [
    'application/json',
    'application/json',
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'text/plain',
    'application/octet-stream',
  ];
  const encodings = [
    undefined,
    undefined,
    undefined,
    undefined,
    'gzip',
    'deflate',
    'br',
    'identity',
    'bogus',
  ];

  function encode(body: Buffer, encoding: string | undefined): Buffer {
    if (encoding === 'gzip') return random() < 0.2 ? body : gzipSync(body);
    if (encoding === 'deflate') return deflateSync(body);
    if (encoding === 'br') return brotliCompressSync(body);
    return body;
  }

  it('answers ~300 hostile bodies on every data-plane route and some control-plane routes with < 500', async () => {
    const admin = { authorization: `Bearer ${adminToken}` };
    const key = { authorization: `Bearer ${acme.apiKey}` };
    const routes: [method: 'POST' | 'PUT' | 'PATCH', url: string, auth: Record<string, string>][] = [
      ['POST', '/v1/decisions', key],
      ['POST', '/v1/decisions/batch', key],
      ['POST', '/v1/events', key],
      ['POST', '/v1/feedback', key],
      ['POST', '/v1/manage/keys', key],
      ['PUT', '/v1/manage/event-types/fuzzed', key],
      ['POST', '/v1/manage/policies/payment/versions', key],
      ['POST', '/v1/manage/policies/payment/test', key],
      ['POST', '/v1/admin/tenants', admin],
      ['PATCH', `/v1/admin/tenants/${acme.id}`, admin],
    ];
    const statuses = new Map<number, number>();
    for (let index = 0; index < 300; index++) {
      const body = hostileBody(index);
      const contentType = pick(contentTypes);
      const encoding = pick(encodings);
      const payload = encode(body, encoding);
      for (const [method, url, auth] of routes) {
        const headers: Record<string, string> = { ...auth, 'content-type': contentType };
        if (encoding !== undefined) headers['content-encoding'] = encoding;
        const response = await raw(t, method, url, headers, payload);
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        const context = `#${index} ${method} ${url} ${contentType} ${encoding} ${body.toString('utf8', 0, 80)}`;
        if (response.statusCode >= 300) expectWellFormedError(response, context);
        else expect(response.statusCode, context).toBeLessThan(300);
      }
    }
    // The fuzz reached both the refusals and the happy paths.
    expect([...statuses.keys()].some((status) => status >= 200 && status < 300)).toBe(true);
    expect([...statuses.keys()].filter((status) => status >= 400).length).toBeGreaterThanOrEqual(4);
    // The node is still healthy afterwards.
    expect((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('answers hostile query strings and paths on the read routes with < 500', async () => {
    const parameters = [
      'entity',
      'verdict',
      'rule',
      'from',
      'to',
      'limit',
      'cursor',
      'before',
      'tenant',
      'x',
    ];
    const values = [
      '',
      'accept',
      '-1',
      '1e999',
      '2026-01-01T00:00:00Z',
      '2026-06-30T23:59:60Z',
      '9999-12-31T23:59:59Z',
      '%00',
      '%ff%fe',
      '%F0%9F%98%80',
      'MToy',
      'OTk5OTk5OTk5OTk5OTk5OTk5OTk5OToxOTk5OTk5OTk5OTk5OTk5OTk5',
      'x'.repeat(5000),
      '[]',
      '{}',
    ];
    const encode = (value: string) => (value.includes('%') ? value : encodeURIComponent(value));
    const paths = [
      '/v1/manage/decisions',
      '/v1/manage/audit',
      '/v1/manage/keys',
      '/v1/manage/event-types',
      `/v1/admin/tenants/${acme.id}/decisions`,
      '/v1/admin/audit',
    ];
    for (let index = 0; index < 150; index++) {
      const query = Array.from(
        { length: 1 + int(3) },
        () => `${pick(parameters)}=${encode(pick(values))}`,
      ).join('&');
      const path = pick(paths);
      const url = `${path}?${query}`;
      const response = path.startsWith('/v1/admin')
        ? await t.admin('GET', url)
        : await t.as(acme.apiKey, 'GET', url);
      if (response.statusCode >= 300) expectWellFormedError(response, url);
    }
    for (const segment of ['%00', '..%2f..%2f', 'x'.repeat(100), '%F0%9F%98%80', '%20', '%2e%2e']) {
      for (const prefix of ['/v1/manage/decisions/', '/v1/manage/event-types/', '/v1/admin/tenants/']) {
        const response =
          prefix === '/v1/admin/tenants/'
            ? await t.admin('GET', `${prefix}${segment}`)
            : await t.as(acme.apiKey, 'GET', `${prefix}${segment}`);
        expect(response.statusCode, `${prefix}${segment}`).toBeGreaterThanOrEqual(400);
        expectWellFormedError(response, `${prefix}${segment}`);
      }
    }
  });
});
