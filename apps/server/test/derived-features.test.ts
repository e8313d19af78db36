import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createNode, type VigilNode } from '../src/node.js';
import { adminToken, startTestNode, type TestNode, type TestTenant } from './harness.js';
import { expectError } from './support.js';

const signupSchema = {
  fields: { account_id: { type: 'string', required: true }, ip: { type: 'ip' }, email: { type: 'email' } },
};
const perSubnet = {
  aggregation: 'count',
  by: ['ip_prefix(ip, 24)'],
  window: '1h',
  event_types: ['payment'],
};
const accountsPerDomain = {
  aggregation: 'distinct',
  field: 'account_id',
  by: ['email_domain(email)'],
  window: '1h',
  event_types: ['payment'],
};
const perAsn = { aggregation: 'count', by: ['asn(ip)'], window: '1h', event_types: ['signup'] };

interface Decision {
  decision_id: string;
  verdict: string;
  rules: { id: string }[];
  errors: { rule: string }[];
}

describe('derived `by` keys over HTTP (IP data off)', () => {
  let node: TestNode;
  let tenant: TestTenant;
  const manage = (method: 'GET' | 'PUT' | 'POST', url: string, body?: unknown) =>
    node.as(tenant.apiKey, method, `/v1/manage${url}`, body);
  let eventNumber = 0;
  const decide = async (type: string, fields: Record<string, unknown>) => {
    const response = await node.as(tenant.apiKey, 'POST', '/v1/decisions', {
      type,
      id: `evt-${++eventNumber}`,
      fields,
    });
    expect(response.statusCode, response.body).toBe(200);
    const decision = response.json() as Decision;
    const stored = await manage('GET', `/decisions/${decision.decision_id}`);
    expect(stored.statusCode, stored.body).toBe(200);
    return { ...decision, features: (stored.json() as { features: Record<string, unknown> }).features };
  };
  const hits = (decision: Decision) => decision.rules.map((rule) => rule.id);
  const publish = async (type: string, policy: unknown) => {
    const saved = await manage('POST', `/policies/${type}/versions`, policy);
    expect(saved.statusCode, saved.body).toBe(201);
    const { version } = saved.json() as { version: number };
    expect((await manage('POST', `/policies/${type}/versions/${version}/publish`, {})).statusCode).toBe(200);
  };

  beforeAll(async () => {
    node = await startTestNode();
    tenant = await node.tenant();
    expect((await manage('PUT', '/event-types/signup', signupSchema)).statusCode).toBe(201);
    for (const [name, definition] of [
      ['events_per_subnet_1h', perSubnet],
      ['accounts_per_domain_1h', accountsPerDomain],
      ['signups_per_asn_1h', perAsn],
    ] as const) {
      const put = await manage('PUT', `/features/${name}`, definition);
      expect(put.statusCode, put.body).toBe(201);
      expect(put.json()).toMatchObject({ by: definition.by });
    }
    for (let attempt = 0; attempt < 100; attempt++) {
      const listed = (await manage('GET', '/features')).json() as { features: { status: string }[] };
      if (listed.features.every((feature) => feature.status === 'ready')) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await publish('payment', {
      strategy: 'worst',
      on_missing: 'not_hit',
      rules: [
        { id: 'subnet-burst', when: 'features.events_per_subnet_1h >= 2', verdict: 'review' },
        { id: 'shared-domain', when: 'features.accounts_per_domain_1h >= 2', verdict: 'challenge' },
      ],
    });
    await publish('signup', {
      strategy: 'worst',
      on_missing: 'review',
      rules: [{ id: 'asn-burst', when: 'features.signups_per_asn_1h > 100', verdict: 'reject' }],
    });
  });
  afterAll(async () => {
    await node.close();
  });

  it('counts addresses of one /24 together and other networks apart, visibly to rules', async () => {
    const first = await decide('payment', { account_id: 'p-1', ip: '203.0.113.5' });
    expect(first.features).toMatchObject({ events_per_subnet_1h: 1 });
    expect(hits(first)).toEqual([]);
    const second = await decide('payment', { account_id: 'p-2', ip: '203.0.113.77' });
    expect(second.features).toMatchObject({ events_per_subnet_1h: 2 });
    expect(hits(second)).toEqual(['subnet-burst']);
    expect(second.verdict).toBe('review');
    const apart = await decide('payment', { account_id: 'p-3', ip: '198.51.100.1' });
    expect(apart.features).toMatchObject({ events_per_subnet_1h: 1 });
    expect(hits(apart)).toEqual([]);
    // An IPv4-mapped IPv6 address is the same IPv4 network.
    const mapped = await decide('payment', { account_id: 'p-4', ip: '::ffff:203.0.113.200' });
    expect(mapped.features).toMatchObject({ events_per_subnet_1h: 3 });
  });

  it('counts distinct accounts per email domain, whatever the case of the address', async () => {
    const one = await decide('payment', { account_id: 'u-1', email: 'Alice@Example.com' });
    expect(one.features).toMatchObject({ accounts_per_domain_1h: 1 });
    expect(hits(one)).toEqual([]);
    const again = await decide('payment', { account_id: 'u-1', email: 'alice@example.COM' });
    expect(again.features).toMatchObject({ accounts_per_domain_1h: 1 });
    const other = await decide('payment', { account_id: 'u-2', email: 'bob@EXAMPLE.com' });
    expect(other.features).toMatchObject({ accounts_per_domain_1h: 2 });
    expect(hits(other)).toEqual(['shared-domain']);
    expect(other.verdict).toBe('challenge');
    const elsewhere = await decide('payment', { account_id: 'u-3', email: 'carol@example.org' });
    expect(elsewhere.features).toMatchObject({ accounts_per_domain_1h: 1 });
    // Without the field the feature has no value; `on_missing: not_hit` leaves the rule out.
    const without = await decide('payment', { account_id: 'u-4' });
    expect(without.features).not.toHaveProperty('accounts_per_domain_1h');
    expect(without.errors.map((error) => error.rule)).toContain('shared-domain');
  });

  it('has no asn value without IP data, so on_missing: review forces review', async () => {
    const decision = await decide('signup', { account_id: 's-1', ip: '8.8.8.8' });
    expect(decision.features).not.toHaveProperty('signups_per_asn_1h');
    expect(decision.errors.map((error) => error.rule)).toEqual(['asn-burst']);
    expect(decision.verdict).toBe('review');
  });

  it('refuses malformed or misapplied derived items with precise details', async () => {
    const bad = expectError(
      await manage('PUT', '/features/bad', {
        ...perSubnet,
        by: ['foo(ip)', 'ip_prefix(email, 24)', 'ip_prefix(ip, 40)', 'email_domain(amount)', 'asn(ip, 1)'],
      }),
      422,
      'invalid_config',
    );
    expect(bad.error.details).toEqual([
      { path: 'by.0', message: "unknown function 'foo'; use email_domain, ip_prefix or asn" },
      { path: 'by.2', message: 'prefix length must be 8..32 for IPv4' },
      { path: 'by.4', message: 'asn takes one field: asn(<ip field>)' },
      { path: 'by.1', message: "ip_prefix needs an ip field; 'email' is email" },
      { path: 'by.3', message: "email_domain needs an email or string field; 'amount' is number" },
    ]);
    for (const shape of ['ip_prefix(ip; 24)', 'event.ip', 'asn(ip', `asn(${'x'.repeat(100)})`]) {
      const refused = expectError(
        await manage('PUT', '/features/bad', { ...perSubnet, by: [shape] }),
        422,
        'invalid_config',
      );
      expect(refused.error.details?.map((detail) => detail.path)).toContain('by.0');
    }
    expectError(await manage('GET', '/features/bad'), 404, 'not_found');
  });
});

describe('asn keys once the IP database arrives', () => {
  let dataDir: string;
  let node: VigilNode | undefined;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'vigil-derived-'));
  });
  afterAll(async () => {
    await node?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('computes asn features from the stored events after a start without IP data', async () => {
    const config = (ipData: 'off' | 'packaged') =>
      loadConfig({
        VIGIL_DATA_DIR: dataDir,
        VIGIL_ADMIN_TOKEN: adminToken,
        VIGIL_LOG_LEVEL: 'silent',
        VIGIL_IP_DATA: ipData,
      });
    const send = (method: 'GET' | 'POST' | 'PUT', url: string, token: string, body?: unknown) => {
      if (node === undefined) throw new Error('no node');
      return node.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token}` },
        ...(body !== undefined && { payload: body as object }),
      });
    };
    node = await createNode(config('off'));
    const tenantId = (
      (await send('POST', '/v1/admin/tenants', adminToken, { name: 'asn' })).json() as { id: string }
    ).id;
    const base = `/v1/admin/tenants/${tenantId}`;
    expect((await send('PUT', `${base}/event-types/signup`, adminToken, signupSchema)).statusCode).toBe(201);
    expect((await send('PUT', `${base}/features/signups_per_asn_1h`, adminToken, perAsn)).statusCode).toBe(
      201,
    );
    const apiKey = (
      (await send('POST', `${base}/keys`, adminToken, { scopes: ['decide'] })).json() as { api_key: string }
    ).api_key;
    const features = async (id: string, ip: string) => {
      const answer = await send('POST', '/v1/decisions', apiKey, {
        type: 'signup',
        id,
        fields: { account_id: id, ip },
      });
      expect(answer.statusCode, answer.body).toBe(200);
      const { decision_id } = answer.json() as { decision_id: string };
      const stored = await send('GET', `${base}/decisions/${decision_id}`, adminToken);
      return (stored.json() as { features: Record<string, unknown> }).features;
    };
    // Google's addresses, IPv4 and IPv6, are all AS15169; none has a value without IP data.
    for (const [id, ip] of [
      ['g-1', '8.8.8.8'],
      ['g-2', '8.8.4.4'],
      ['g-3', '2001:4860:4860::8888'],
    ] as const)
      expect(await features(id, ip)).toEqual({});
    await node.close();

    // Restart with IP data: it loads after the start, so the replay could not count these events.
    node = await createNode(config('packaged'));
    let probe: Record<string, unknown> = {};
    for (let attempt = 0; attempt < 200 && probe.signups_per_asn_1h === undefined; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      // Cloudflare (AS13335): a different AS, so probes do not count for Google's.
      probe = await features(`probe-${attempt}`, '1.1.1.1');
    }
    expect(probe.signups_per_asn_1h, 'IP data loaded within 10 s').toBeTypeOf('number');
    for (let attempt = 0; attempt < 200; attempt++) {
      const status = (await send('GET', `${base}/features/signups_per_asn_1h`, adminToken)).json() as {
        status: string;
      };
      if (status.status !== 'backfilling') break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await features('g-4', '8.8.8.8')).toEqual({ signups_per_asn_1h: 4 });
  });
});
