import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedisClient, RedisReplayGuard, whenReady } from '@vigil/store-redis';
import { RedisProcess, rawCommand } from '@vigil/store-redis/testing';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayeredReplayGuard, ReplayGuard } from '../src/auth.js';
import { loadConfig } from '../src/config.js';
import { createNode, type VigilNode } from '../src/node.js';
import { adminToken } from './harness.js';

// A node with VIGIL_REDIS_URL keeps its feature counters in a real Redis that this test starts,
// stops and freezes itself (never the shared one).

let redis: RedisProcess;
let dataDir: string;
let node: VigilNode;
let apiKey = '';
let eventCounter = 0;

async function start(): Promise<VigilNode> {
  return createNode(
    loadConfig({
      VIGIL_DATA_DIR: dataDir,
      VIGIL_ADMIN_TOKEN: adminToken,
      VIGIL_LOG_LEVEL: 'silent',
      VIGIL_IP_DATA: 'off',
      VIGIL_REDIS_URL: redis.url,
    }),
  );
}

function send(token: string, method: InjectOptions['method'], url: string, body?: unknown) {
  return node.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(body !== undefined && { payload: body as object }),
  });
}

/** One login of account u-1; returns the feature value it saw and what was degraded. */
async function login(): Promise<{ failures: unknown; degraded: string[] }> {
  const response = await send(apiKey, 'POST', '/v1/decisions', {
    type: 'login',
    id: `redis-${++eventCounter}`,
    fields: { account_id: 'u-1', success: false },
  });
  expect(response.statusCode, response.body).toBe(200);
  const decision = response.json() as { decision_id: string; degraded: string[] };
  const stored = await send(apiKey, 'GET', `/v1/manage/decisions/${decision.decision_id}`);
  expect(stored.statusCode, stored.body).toBe(200);
  const features = (stored.json() as { features?: Record<string, unknown> }).features;
  return { failures: features?.failed_logins_1h, degraded: decision.degraded };
}

beforeAll(async () => {
  redis = await RedisProcess.start();
  dataDir = mkdtempSync(join(tmpdir(), 'vigil-redis-node-'));
  node = await start();
  const tenant = (await send(adminToken, 'POST', '/v1/admin/tenants', { name: 'acme' })).json() as {
    id: string;
  };
  const key = (
    await send(adminToken, 'POST', `/v1/admin/tenants/${tenant.id}/keys`, { scopes: ['decide', 'manage'] })
  ).json() as { api_key: string };
  apiKey = key.api_key;
  const steps = [
    await send(apiKey, 'PUT', '/v1/manage/event-types/login', {
      fields: { account_id: { type: 'string', required: true }, success: { type: 'boolean' } },
    }),
    await send(apiKey, 'PUT', '/v1/manage/features/failed_logins_1h', {
      aggregation: 'count',
      by: ['account_id'],
      window: '1h',
      event_types: ['login'],
      filter: 'event.success == false',
    }),
    await send(apiKey, 'POST', '/v1/manage/policies/login/versions', {
      strategy: 'worst',
      on_missing: 'not_hit',
      rules: [{ id: 'brute-force', when: 'features.failed_logins_1h >= 5', verdict: 'reject' }],
    }),
    await send(apiKey, 'POST', '/v1/manage/policies/login/versions/1/publish', {}),
  ];
  for (const step of steps) expect(step.statusCode, step.body).toBeLessThan(300);
}, 60_000);

afterAll(async () => {
  await node?.close();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('counters in Redis', () => {
  it('counts in Redis, and a restarted node goes on from the shared values without counting twice', async () => {
    expect(await login()).toEqual({ failures: 1, degraded: [] });
    expect(await login()).toEqual({ failures: 2, degraded: [] });
    expect(Number((await rawCommand(redis.port, 'DBSIZE')).slice(1))).toBeGreaterThan(0);
    await node.close();
    node = await start();
    expect(await login()).toEqual({ failures: 3, degraded: [] });
  });

  it('counts locally and marks decisions degraded while Redis is frozen, then reconciles', async () => {
    redis.pause();
    try {
      const during = await login();
      expect(during.degraded).toContain('features');
      await login();
    } finally {
      redis.resume();
    }
    // The two logins counted locally reach Redis once it answers again: the count goes on from 5.
    const deadline = Date.now() + 20_000;
    let after = await login();
    while (after.degraded.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      after = await login();
    }
    expect(after.degraded).toEqual([]);
    // Every login counts once: the one whose command timed out on the frozen server runs when the
    // server wakes, and its replay from the local queue finds the event's mark and only reads.
    expect(after.failures).toBe(eventCounter);
  }, 40_000);
});

describe('signatures seen, shared through Redis', () => {
  it('refuses on one node a signature first used on another, and falls back to its own while Redis is frozen', async () => {
    const client = createRedisClient(redis.url);
    try {
      await whenReady(client);
      const failures: unknown[] = [];
      const onFailure = (error: unknown) => failures.push(error);
      const nodeA = new LayeredReplayGuard(new ReplayGuard(), new RedisReplayGuard(client), onFailure);
      const nodeB = new LayeredReplayGuard(new ReplayGuard(), new RedisReplayGuard(client), onFailure);
      expect(await nodeA.firstUse('k1:aa')).toBe(true);
      expect(await nodeB.firstUse('k1:aa')).toBe(false);
      expect(await nodeA.firstUse('k1:aa')).toBe(false);
      redis.pause();
      try {
        expect(await nodeB.firstUse('k1:bb')).toBe(true);
        expect(await nodeB.firstUse('k1:bb')).toBe(false);
      } finally {
        redis.resume();
      }
      expect(failures).toHaveLength(1);
    } finally {
      client.disconnect();
    }
  });
});
