import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisProcess } from '@vigil/store-redis/testing';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createNode, type VigilNode } from '../src/node.js';
import { adminToken } from './harness.js';
import { expectError } from './support.js';

// `last` over string fields end to end: the definition, the rule type check, the decision path,
// reported events, and a restart, with counters in process and in a Redis this file starts
// itself (and stops by PID).

const signinSchema = {
  fields: {
    account_id: { type: 'string', required: true },
    country: { type: 'string', required: true },
    device_id: { type: 'string' },
    ip: { type: 'ip' },
    success: { type: 'boolean', required: true },
  },
};
const purchaseSchema = {
  fields: {
    account_id: { type: 'string', required: true },
    country: { type: 'string', required: true },
    amount: { type: 'number' },
  },
};
/**
 * The country of the account's last sign-in. A feature's value includes the current event, so it
 * listens to purchases too (rules of an event type read only its features) but counts sign-ins
 * only: a purchase reads the sign-in country and compares it with its own.
 */
const lastCountry = {
  aggregation: 'last',
  field: 'country',
  by: ['account_id'],
  window: '24h',
  event_types: ['signin', 'purchase'],
  filter: "event.type == 'signin'",
};
const lastDevice = {
  aggregation: 'last',
  field: 'device_id',
  by: ['account_id'],
  window: '1h',
  event_types: ['signin'],
};
const newCountryPolicy = {
  strategy: 'worst',
  on_missing: 'not_hit',
  rules: [
    {
      id: 'new-country',
      when: "features.last_country != '' && features.last_country != event.country",
      verdict: 'review',
      reason: 'purchase from another country than the last sign-in',
    },
  ],
};

for (const backend of ['memory', 'redis'] as const) {
  describe(`last of strings (counters in ${backend})`, () => {
    let redis: RedisProcess | undefined;
    let dataDir: string;
    let node: VigilNode;
    let apiKey = '';
    let events = 0;

    const start = async () =>
      createNode(
        loadConfig({
          VIGIL_DATA_DIR: dataDir,
          VIGIL_ADMIN_TOKEN: adminToken,
          VIGIL_LOG_LEVEL: 'silent',
          VIGIL_IP_DATA: 'off',
          VIGIL_SHED_LAG_MS: '0',
          ...(redis !== undefined && { VIGIL_REDIS_URL: redis.url }),
        }),
      );
    const send = (token: string, method: InjectOptions['method'], url: string, body?: unknown) =>
      node.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token}` },
        ...(body !== undefined && { payload: body as object }),
      });
    const manage = (method: InjectOptions['method'], url: string, body?: unknown) =>
      send(apiKey, method, `/v1/manage${url}`, body);

    /** Decides one event; returns its verdict and the feature values stored with the decision. */
    async function decide(type: 'signin' | 'purchase', fields: Record<string, unknown>) {
      const response = await send(apiKey, 'POST', '/v1/decisions', { type, id: `e-${++events}`, fields });
      expect(response.statusCode, response.body).toBe(200);
      const decision = response.json() as { decision_id: string; verdict: string; degraded: string[] };
      expect(decision.degraded).toEqual([]);
      const stored = await manage('GET', `/decisions/${decision.decision_id}`);
      expect(stored.statusCode, stored.body).toBe(200);
      return {
        verdict: decision.verdict,
        features: (stored.json() as { features?: Record<string, unknown> }).features ?? {},
      };
    }
    const signin = (account: string, country: string, extra: Record<string, unknown> = {}) =>
      decide('signin', { account_id: account, country, success: true, ...extra });
    const purchase = (account: string, country: string) =>
      decide('purchase', { account_id: account, country, amount: 10 });

    beforeAll(async () => {
      if (backend === 'redis') redis = await RedisProcess.start();
      dataDir = mkdtempSync(join(tmpdir(), `vigil-last-string-${backend}-`));
      node = await start();
      const tenant = (await send(adminToken, 'POST', '/v1/admin/tenants', { name: 'acme' })).json() as {
        id: string;
      };
      apiKey = (
        (
          await send(adminToken, 'POST', `/v1/admin/tenants/${tenant.id}/keys`, {
            scopes: ['decide', 'manage'],
          })
        ).json() as { api_key: string }
      ).api_key;
      expect((await manage('PUT', '/event-types/signin', signinSchema)).statusCode).toBe(201);
      expect((await manage('PUT', '/event-types/purchase', purchaseSchema)).statusCode).toBe(201);
    }, 30_000);

    afterAll(async () => {
      await node?.close();
      await redis?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('accepts last over string fields with value_type string, and refuses other field types', async () => {
      const created = await manage('PUT', '/features/last_country', lastCountry);
      expect(created.statusCode, created.body).toBe(201);
      expect(created.json()).toMatchObject({
        name: 'last_country',
        aggregation: 'last',
        value_type: 'string',
      });
      expect((await manage('PUT', '/features/last_device', lastDevice)).statusCode).toBe(201);
      expect((await manage('GET', '/features/last_device')).json()).toMatchObject({ value_type: 'string' });

      const onBoolean = expectError(
        await manage('PUT', '/features/last_success', { ...lastDevice, field: 'success' }),
        422,
        'invalid_config',
      );
      expect(onBoolean.error.details).toEqual([
        {
          path: 'field',
          message:
            "'last' needs a number, integer, string, ip, email, phone or enum field; 'success' is boolean",
        },
      ]);
      // `amount` is a number in purchase, and absent from signin.
      const mixed = expectError(
        await manage('PUT', '/features/last_amount', {
          ...lastDevice,
          field: 'amount',
          event_types: ['purchase', 'signin'],
        }),
        422,
        'invalid_config',
      );
      expect(mixed.error.details).toEqual([
        { path: 'field', message: "'amount' is not a field of 'signin'" },
      ]);
    });

    it('types the feature as string in rules: comparing it with a number is refused at save time', async () => {
      const refused = expectError(
        await manage('POST', '/policies/purchase/versions', {
          rules: [{ id: 'bad', when: 'features.last_country > 5', verdict: 'review' }],
        }),
        422,
        'invalid_policy',
      ) as { error: { details: { rule: string; message: string }[] } };
      expect(refused.error.details.map((detail) => detail.rule)).toEqual(['bad']);
      expect(refused.error.details[0]?.message).toContain('string');
      const version = await manage('POST', '/policies/purchase/versions', newCountryPolicy);
      expect(version.statusCode, version.body).toBe(201);
      const { version: number } = version.json() as { version: number };
      expect((await manage('POST', `/policies/purchase/versions/${number}/publish`, {})).statusCode).toBe(
        200,
      );
    });

    it('reviews a purchase from another country than the last sign-in', async () => {
      // No sign-in yet: the feature has no value, the rule errors and on_missing (not_hit) applies.
      const first = await purchase('alice', 'FR');
      expect(first).toEqual({ verdict: 'accept', features: {} });

      // A sign-in's own values include it.
      expect(await signin('alice', 'FR', { device_id: 'dev-1' })).toEqual({
        verdict: 'accept',
        features: { last_country: 'FR', last_device: 'dev-1' },
      });
      expect(await purchase('alice', 'FR')).toEqual({ verdict: 'accept', features: { last_country: 'FR' } });
      // The purchase does not count (filter), so it reads the sign-in's country.
      expect(await purchase('alice', 'DE')).toEqual({ verdict: 'review', features: { last_country: 'FR' } });
      expect(await purchase('alice', 'DE')).toEqual({ verdict: 'review', features: { last_country: 'FR' } });

      // The newest sign-in wins; a sign-in without a device keeps the last device.
      expect(await signin('alice', 'DE')).toEqual({
        verdict: 'accept',
        features: { last_country: 'DE', last_device: 'dev-1' },
      });
      expect(await purchase('alice', 'DE')).toEqual({ verdict: 'accept', features: { last_country: 'DE' } });
      // Keys never mix.
      expect(await signin('bob', 'ES')).toEqual({
        verdict: 'accept',
        features: { last_country: 'ES' },
      });
      expect((await purchase('alice', 'ES')).verdict).toBe('review');
      expect((await purchase('bob', 'ES')).verdict).toBe('accept');
    });

    it('counts sign-ins reported on /v1/events', async () => {
      const reported = await send(apiKey, 'POST', '/v1/events', {
        events: [
          { type: 'signin', id: 'reported-1', fields: { account_id: 'alice', country: 'US', success: true } },
        ],
      });
      expect(reported.statusCode, reported.body).toBe(202);
      expect(await purchase('alice', 'DE')).toEqual({ verdict: 'review', features: { last_country: 'US' } });
      expect(await purchase('alice', 'US')).toEqual({ verdict: 'accept', features: { last_country: 'US' } });
    });

    it('keeps the last strings across a restart of the node', async () => {
      await node.close();
      node = await start();
      expect(await purchase('alice', 'DE')).toEqual({ verdict: 'review', features: { last_country: 'US' } });
      expect(await purchase('bob', 'ES')).toEqual({ verdict: 'accept', features: { last_country: 'ES' } });
      expect(await signin('alice', 'US')).toEqual({
        verdict: 'accept',
        features: { last_country: 'US', last_device: 'dev-1' },
      });
    }, 30_000);

    it('computes a new last feature from stored history (backfill)', async () => {
      // Stored sign-ins of carol from before the feature existed; the newest has no ip.
      await signin('carol', 'FR', { ip: '203.0.113.9' });
      await signin('carol', 'FR', { ip: '2001:db8::7' });
      await signin('carol', 'FR');
      const put = await manage('PUT', '/features/last_ip', {
        aggregation: 'last',
        field: 'ip',
        by: ['account_id'],
        window: '1h',
        event_types: ['signin'],
      });
      expect(put.statusCode, put.body).toBe(201);
      for (let attempt = 0; attempt < 100; attempt++) {
        const status = ((await manage('GET', '/features/last_ip')).json() as { status: string }).status;
        if (status !== 'backfilling') break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect((await manage('GET', '/features/last_ip')).json()).toMatchObject({
        status: 'ready',
        value_type: 'string',
      });
      // Without an ip, the sign-in reads the newest one stored before the feature existed.
      expect((await signin('carol', 'FR')).features).toMatchObject({ last_ip: '2001:db8::7' });
      expect((await signin('carol', 'FR', { ip: '198.51.100.1' })).features).toMatchObject({
        last_ip: '198.51.100.1',
      });
    });
  });
}
