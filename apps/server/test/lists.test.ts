import { join } from 'node:path';
import { SqliteListStore } from '@vigil/store-sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, startTestNode, type TestNode, type TestTenant } from './harness.js';
import { expectError, raw } from './support.js';

let node: TestNode;
let tenant: TestTenant;

beforeAll(async () => {
  node = await startTestNode();
  tenant = await node.tenant();
});
afterAll(async () => {
  await node.close();
});

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const manage = (method: Method, url: string, body?: unknown) =>
  node.as(tenant.apiKey, method, `/v1/manage${url}`, body);
const csv = (url: string, text: string) =>
  raw(
    node,
    'POST',
    `/v1/manage${url}`,
    { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'text/csv' },
    text,
  );

interface ImportResult {
  added: number;
  updated: number;
  rejected: { line?: number; index?: number; value: unknown; message: string }[];
}
interface Exported {
  entries: { value: string; ttl_seconds: number | null; expires_at: string | null; note: string | null }[];
  next_cursor: string | null;
}

async function createList(name: string, body: Record<string, unknown>): Promise<void> {
  const response = await manage('PUT', `/lists/${name}`, body);
  expect(response.statusCode, response.body).toBe(201);
}

let eventCounter = 0;
async function decide(fields: Record<string, unknown>) {
  const response = await node.as(tenant.apiKey, 'POST', '/v1/decisions', {
    type: 'payment',
    id: `list-evt-${++eventCounter}`,
    fields: { account_id: 'u-1', ...fields },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { verdict: string; rules: { id: string }[]; errors: unknown[] };
}

async function publish(rules: unknown[]): Promise<number> {
  const saved = await manage('POST', '/policies/payment/versions', { rules });
  expect(saved.statusCode, saved.body).toBe(201);
  const version = (saved.json() as { version: number }).version;
  const published = await manage('POST', `/policies/payment/versions/${version}/publish`, {});
  expect(published.statusCode, published.body).toBe(200);
  return version;
}

describe('list definitions', () => {
  it('creates, changes, reads and deletes a list', async () => {
    await createList('watch_devices', { kind: 'watch', type: 'device', description: 'seen in chargebacks' });
    const changed = await manage('PUT', '/lists/watch_devices', {
      kind: 'block',
      description: 'now blocked',
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({
      name: 'watch_devices',
      kind: 'block',
      type: 'device',
      entries: 0,
    });
    const all = (await manage('GET', '/lists')).json() as { lists: { name: string }[] };
    expect(all.lists.map((list) => list.name)).toContain('watch_devices');
    expect((await manage('GET', '/lists/watch_devices')).json()).toMatchObject({
      description: 'now blocked',
    });
    expect((await manage('DELETE', '/lists/watch_devices')).statusCode).toBe(204);
    expectError(await manage('GET', '/lists/watch_devices'), 404, 'not_found');
    expectError(await manage('DELETE', '/lists/watch_devices'), 404, 'not_found');
  });

  it('refuses a bad definition and a type change of a list with entries', async () => {
    expectError(await manage('PUT', '/lists/bad', { kind: 'deny' }), 422, 'invalid_config');
    expectError(await manage('PUT', '/lists/bad', { kind: 'block', type: 'colour' }), 422, 'invalid_config');
    expectError(await manage('PUT', '/lists/bad-name', { kind: 'block' }), 400, 'invalid_request');
    await createList('typed', { kind: 'block', type: 'email' });
    await manage('POST', '/lists/typed/entries', [{ value: 'a@example.com' }]);
    expectError(await manage('PUT', '/lists/typed', { kind: 'block', type: 'ip' }), 409, 'invalid_state');
    expectError(await manage('POST', '/lists/missing/entries', [{ value: 'x' }]), 404, 'not_found');
  });
});

describe('list entries', () => {
  it('imports JSON, normalising values and listing every refused entry', async () => {
    await createList('emails', { kind: 'block', type: 'email' });
    const response = await manage('POST', '/lists/emails/entries', [
      { value: 'Fraud@Example.com', ttl_seconds: 3600, note: 'chargeback' },
      { value: 'not-an-email' },
      { value: 'mule@example.org' },
      { value: 'x@example.com', ttl_seconds: 0 },
      { value: 'y@example.com', colour: 'red' },
      'bare-string',
      { value: 'fraud@example.com', note: 'same value, later wins' },
    ]);
    expect(response.statusCode, response.body).toBe(200);
    const result = response.json() as ImportResult;
    expect(result).toMatchObject({ added: 2, updated: 0 });
    expect(result.rejected.map((entry) => entry.index)).toEqual([1, 3, 4, 5]);
    expect(result.rejected[0]).toMatchObject({
      value: 'not-an-email',
      message: expect.stringMatching(/email/),
    });
    const again = (await manage('POST', '/lists/emails/entries', [{ value: 'MULE@example.org' }])).json();
    expect(again).toMatchObject({ added: 0, updated: 1, rejected: [] });
    const exported = (await manage('GET', '/lists/emails/entries')).json() as Exported;
    expect(exported.entries.map((entry) => [entry.value, entry.note])).toEqual([
      ['fraud@example.com', 'same value, later wins'],
      ['mule@example.org', null],
    ]);
    expectError(await manage('POST', '/lists/emails/entries', { value: 'a@b.co' }), 400, 'invalid_request');
  });

  it('imports CSV with a header, quoted notes and bad lines reported by line number', async () => {
    await createList('blocked_ips', { kind: 'block', type: 'ip' });
    const text = [
      'value,ttl_seconds,note',
      '198.51.100.0/24,3600,office range',
      'not-an-ip,,',
      '203.0.113.7,,"note with ""quotes"", and a comma"',
      '2001:db8::/32',
      '192.0.2.1,soon,',
      '0.0.0.0/0,,everything',
      '',
      '2001:db8:ffff::1/128,60,',
    ].join('\r\n');
    const response = await csv('/lists/blocked_ips/entries', text);
    expect(response.statusCode, response.body).toBe(200);
    const result = response.json() as ImportResult;
    expect(result).toMatchObject({ added: 4, updated: 0 });
    expect(result.rejected.map((entry) => [entry.line, entry.value])).toEqual([
      [3, 'not-an-ip'],
      [6, '192.0.2.1'],
      [7, '0.0.0.0/0'],
    ]);
    const exported = (await manage('GET', '/lists/blocked_ips/entries?limit=10')).json() as Exported;
    expect(exported.entries.map((entry) => entry.value).sort()).toEqual(
      ['198.51.100.0/24', '2001:db8::/32', '2001:db8:ffff::1', '203.0.113.7'].sort(),
    );
    const office = exported.entries.find((entry) => entry.value === '198.51.100.0/24');
    expect(office?.ttl_seconds).toBeGreaterThan(3500);
    expect(office?.note).toBe('office range');
    expect(exported.entries.find((entry) => entry.value === '203.0.113.7')?.note).toBe(
      'note with "quotes", and a comma',
    );
  });

  it('removes an entry by its URL-encoded value, CIDR included', async () => {
    await createList('ranges', { kind: 'allow', type: 'ip' });
    await manage('POST', '/lists/ranges/entries', [{ value: '10.0.0.0/8' }, { value: '2001:db8::1' }]);
    expect(
      (await manage('DELETE', `/lists/ranges/entries/${encodeURIComponent('10.0.0.0/8')}`)).statusCode,
    ).toBe(204);
    expect(
      (await manage('DELETE', `/lists/ranges/entries/${encodeURIComponent('2001:DB8:0::1')}`)).statusCode,
    ).toBe(204);
    expectError(
      await manage('DELETE', `/lists/ranges/entries/${encodeURIComponent('10.0.0.0/8')}`),
      404,
      'not_found',
    );
    expect(((await manage('GET', '/lists/ranges/entries')).json() as Exported).entries).toEqual([]);
  });

  it('exports in pages and as CSV, and an export imports back to the same list', async () => {
    await createList('accounts', { kind: 'watch', type: 'account' });
    const entries = Array.from({ length: 45 }, (_, index) => ({
      value: `acct-${String(index).padStart(2, '0')}`,
      ...(index % 3 === 0 && { ttl_seconds: 86_400 }),
      ...(index % 5 === 0 && { note: `note, ${index}` }),
    }));
    expect((await manage('POST', '/lists/accounts/entries', entries)).json()).toMatchObject({ added: 45 });
    const pages: Exported['entries'] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page = (
        await manage('GET', `/lists/accounts/entries?limit=20&cursor=${cursor}`)
      ).json() as Exported;
      pages.push(...page.entries);
      cursor = page.next_cursor;
    }
    expect(pages.map((entry) => entry.value)).toEqual(entries.map((entry) => entry.value));

    const exported = await manage('GET', '/lists/accounts/entries?format=csv&limit=1000');
    expect(exported.statusCode).toBe(200);
    expect(exported.headers['content-type']).toMatch(/^text\/csv/);
    await createList('accounts_copy', { kind: 'watch', type: 'account' });
    const imported = (await csv('/lists/accounts_copy/entries', exported.body)).json() as ImportResult;
    expect(imported).toMatchObject({ added: 45, rejected: [] });
    const copy = (await manage('GET', '/lists/accounts_copy/entries?limit=1000')).json() as Exported;
    expect(
      copy.entries.map(({ value, note, ttl_seconds }) => ({ value, note, ttl: ttl_seconds !== null })),
    ).toEqual(pages.map(({ value, note, ttl_seconds }) => ({ value, note, ttl: ttl_seconds !== null })));
    // The JSON export's entries can be posted back as they are.
    await createList('accounts_json', { kind: 'watch', type: 'account' });
    expect((await manage('POST', '/lists/accounts_json/entries', pages)).json()).toMatchObject({
      added: 45,
      rejected: [],
    });
  });

  it('answers 415 to CSV on routes that take JSON only', async () => {
    const response = await raw(
      node,
      'PUT',
      '/v1/manage/lists/csv_here',
      { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'text/csv' },
      'kind\nblock',
    );
    expect(response.statusCode).toBeGreaterThanOrEqual(400);
    expect(response.statusCode).toBeLessThan(500);
    expectError(
      await raw(
        node,
        'POST',
        '/v1/decisions',
        { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'text/csv' },
        'a,b',
      ),
      415,
      'unsupported_media_type',
    );
  });

  it('records list changes in the audit trail, an import as one entry with counts', async () => {
    await createList('audited', { kind: 'block', type: 'string' });
    await manage('POST', '/lists/audited/entries', [{ value: 'a' }, { value: 'b' }, { value: '' }]);
    await manage('DELETE', '/lists/audited/entries/a');
    await manage('DELETE', '/lists/audited');
    const audit = (await manage('GET', '/audit?limit=1000')).json() as {
      entries: { action: string; target: string; actor: string; diff: { before: unknown; after: unknown } }[];
    };
    const ours = audit.entries.filter((entry) => entry.target === 'audited');
    expect(ours.map((entry) => entry.action).sort()).toEqual(
      ['list.create', 'list.delete', 'list.entries.import', 'list.entry.delete'].sort(),
    );
    expect(ours.find((entry) => entry.action === 'list.entries.import')?.diff.after).toEqual({
      added: 2,
      updated: 0,
      rejected: 1,
    });
    expect(ours[0]?.actor).toBe(`key:${tenant.keyId}`);
  });
});

describe('tenant deletion', () => {
  it("removes the tenant's lists and entries from lists.db", async () => {
    const other = await node.tenant('short-lived');
    const put = await node.as(other.apiKey, 'PUT', '/v1/manage/lists/doomed', { kind: 'block', type: 'ip' });
    expect(put.statusCode).toBe(201);
    await node.as(other.apiKey, 'POST', '/v1/manage/lists/doomed/entries', [{ value: '192.0.2.1' }]);
    // What a node starting on this data dir would load.
    const stored = async () => {
      const store = new SqliteListStore({ path: join(node.dataDir, 'lists.db'), sweepIntervalMs: 0 });
      try {
        return { lists: (await store.lists(other.id)).length, entries: await store.size(other.id, 'doomed') };
      } finally {
        await store.close();
      }
    };
    expect(await stored()).toEqual({ lists: 1, entries: 1 });
    expect((await node.admin('DELETE', `/v1/admin/tenants/${other.id}`)).statusCode).toBe(204);
    expect(await stored()).toEqual({ lists: 0, entries: 0 });
  });
});

describe('lists in rules', () => {
  it('refuses a rule naming a list that does not exist', async () => {
    const response = await manage('POST', '/policies/payment/versions', {
      rules: [{ id: 'r', when: "in_list('no_such_list', event.ip)", verdict: 'reject' }],
    });
    const body = expectError(response, 422, 'invalid_policy');
    expect(JSON.stringify(body)).toContain('no_such_list');
  });

  it('blocks a decision while the IP is listed, and stops once the entry is removed', async () => {
    await createList('rule_ips', { kind: 'block', type: 'ip' });
    await createList('rule_emails', { kind: 'watch', type: 'email' });
    await manage('POST', '/lists/rule_ips/entries', [
      { value: '198.51.100.0/24' },
      { value: '2001:db8::/48' },
    ]);
    await manage('POST', '/lists/rule_emails/entries', [{ value: 'Watch@Example.com' }]);
    await publish([
      { id: 'blocked-ip', when: "has(event.ip) && in_list('rule_ips', event.ip)", verdict: 'reject' },
      {
        id: 'watched-email',
        when: "has(event.email) && in_list('rule_emails', event.email)",
        verdict: 'review',
      },
    ]);
    expect(await decide({ ip: '198.51.100.23' })).toMatchObject({
      verdict: 'reject',
      rules: [{ id: 'blocked-ip' }],
    });
    expect(await decide({ ip: '2001:db8:0:1::5' })).toMatchObject({ verdict: 'reject' });
    expect(await decide({ ip: '198.51.101.1' })).toMatchObject({ verdict: 'accept', rules: [] });
    expect(await decide({ email: 'watch@EXAMPLE.com' })).toMatchObject({ verdict: 'review' });

    // Changes are live as soon as the call returns.
    await manage('POST', '/lists/rule_ips/entries', [{ value: '192.0.2.44' }]);
    expect(await decide({ ip: '192.0.2.44' })).toMatchObject({ verdict: 'reject' });
    expect(
      (await manage('DELETE', `/lists/rule_ips/entries/${encodeURIComponent('198.51.100.0/24')}`)).statusCode,
    ).toBe(204);
    expect(await decide({ ip: '198.51.100.23' })).toMatchObject({ verdict: 'accept' });

    // A list a serving version uses cannot be deleted.
    expectError(await manage('DELETE', '/lists/rule_ips'), 409, 'invalid_state');
  });

  it('tests a draft against the current lists', async () => {
    await createList('test_accounts', { kind: 'watch', type: 'account' });
    await manage('POST', '/lists/test_accounts/entries', [{ value: 'mule-7' }]);
    const response = await manage('POST', '/policies/payment/test', {
      policy: {
        rules: [{ id: 'mule', when: "in_list('test_accounts', event.account_id)", verdict: 'review' }],
      },
      events: [
        { type: 'payment', id: 't-1', fields: { account_id: 'mule-7' } },
        { type: 'payment', id: 't-2', fields: { account_id: 'someone' } },
      ],
    });
    expect(response.statusCode, response.body).toBe(200);
    const results = (response.json() as { results: { verdict: string }[] }).results;
    expect(results.map((result) => result.verdict)).toEqual(['review', 'accept']);
  });

  it('keeps lists and entries across a restart, and rules still see them', async () => {
    await createList('restart_ips', { kind: 'block', type: 'ip' });
    await manage('POST', '/lists/restart_ips/entries', [
      { value: '203.0.113.0/24', note: 'kept', ttl_seconds: 3600 },
    ]);
    await publish([
      { id: 'restart-rule', when: "has(event.ip) && in_list('restart_ips', event.ip)", verdict: 'reject' },
    ]);
    await node.node.close();
    const { loadConfig } = await import('../src/config.js');
    const { createNode } = await import('../src/node.js');
    node.node = await createNode(
      loadConfig({ VIGIL_DATA_DIR: node.dataDir, VIGIL_ADMIN_TOKEN: adminToken, VIGIL_LOG_LEVEL: 'silent' }),
    );
    node.app = node.node.app;
    const inject = (method: Method, url: string, payload?: object) =>
      node.node.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${tenant.apiKey}` },
        ...(payload !== undefined && { payload }),
      });
    const decision = await inject('POST', '/v1/decisions', {
      type: 'payment',
      id: 'after-restart',
      fields: { account_id: 'u-1', ip: '203.0.113.200' },
    });
    expect(decision.json()).toMatchObject({ verdict: 'reject', rules: [{ id: 'restart-rule' }] });
    const exported = (await inject('GET', '/v1/manage/lists/restart_ips/entries')).json() as Exported;
    expect(exported.entries).toMatchObject([{ value: '203.0.113.0/24', note: 'kept' }]);
    expect((await inject('GET', '/v1/manage/lists/emails')).json()).toMatchObject({
      type: 'email',
      entries: 2,
    });
  });
});
