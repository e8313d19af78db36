import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisProcess } from '@vigil/store-redis/testing';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createNode, type VigilNode } from '../src/node.js';
import { adminToken } from './harness.js';

// A node with VIGIL_REDIS_URL keeps its lists in a real Redis that this test starts and kills
// itself (never the shared one), mirrored in memory.

let redis: RedisProcess;
const dataDirs: string[] = [];
let node: VigilNode | undefined;
let apiKey = '';
let eventCounter = 0;

function start(existing?: string): Promise<VigilNode> {
  const dataDir = existing ?? mkdtempSync(join(tmpdir(), 'vigil-redis-lists-'));
  if (existing === undefined) dataDirs.push(dataDir);
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

function send(on: VigilNode, token: string, method: InjectOptions['method'], url: string, body?: unknown) {
  return on.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(body !== undefined && { payload: body as object }),
  });
}

async function verdict(on: VigilNode, account: string): Promise<{ verdict: string; degraded: string[] }> {
  const response = await send(on, apiKey, 'POST', '/v1/decisions', {
    type: 'login',
    id: `lists-${++eventCounter}`,
    fields: { account_id: account },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { verdict: string; degraded: string[] };
}

beforeAll(async () => {
  redis = await RedisProcess.start();
  node = await start();
  const tenant = (await send(node, adminToken, 'POST', '/v1/admin/tenants', { name: 'acme' })).json() as {
    id: string;
  };
  const key = (
    await send(node, adminToken, 'POST', `/v1/admin/tenants/${tenant.id}/keys`, {
      scopes: ['decide', 'manage'],
    })
  ).json() as { api_key: string };
  apiKey = key.api_key;
  const steps = [
    await send(node, apiKey, 'PUT', '/v1/manage/event-types/login', {
      fields: { account_id: { type: 'string', required: true } },
    }),
    await send(node, apiKey, 'PUT', '/v1/manage/lists/blocked', { kind: 'block', type: 'account' }),
    await send(node, apiKey, 'POST', '/v1/manage/lists/blocked/entries', [{ value: 'u-bad' }]),
    await send(node, apiKey, 'POST', '/v1/manage/policies/login/versions', {
      strategy: 'worst',
      on_missing: 'not_hit',
      rules: [{ id: 'listed', when: "in_list('blocked', event.account_id)", verdict: 'reject' }],
    }),
    await send(node, apiKey, 'POST', '/v1/manage/policies/login/versions/1/publish', {}),
  ];
  for (const step of steps) expect(step.statusCode, step.body).toBeLessThan(300);
}, 60_000);

afterAll(async () => {
  await node?.close();
  await redis?.stop();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

describe('lists in Redis', () => {
  it('keeps them in Redis, not in lists.db: a restarted node loads them before it serves', async () => {
    await node?.close();
    node = await start(dataDirs[0]);
    expect(existsSync(join(dataDirs[0] as string, 'lists.db'))).toBe(false);
    expect(await verdict(node, 'u-bad')).toMatchObject({ verdict: 'reject', degraded: [] });
    expect(await verdict(node, 'u-good')).toMatchObject({ verdict: 'accept', degraded: [] });
  });

  it('answers from the mirror while Redis is down, and refuses list changes with 503', async () => {
    const on = node as VigilNode;
    await redis.kill();
    try {
      expect(await verdict(on, 'u-bad')).toMatchObject({ verdict: 'reject', degraded: [] });
      const add = await send(on, apiKey, 'POST', '/v1/manage/lists/blocked/entries', [{ value: 'u-new' }]);
      expect({ status: add.statusCode, body: add.json() }).toMatchObject({
        status: 503,
        body: { error: { code: 'component_unavailable' } },
      });
      const remove = await send(on, apiKey, 'DELETE', '/v1/manage/lists/blocked/entries/u-bad');
      expect(remove.statusCode).toBe(503);
      expect(await verdict(on, 'u-bad')).toMatchObject({ verdict: 'reject', degraded: [] });
    } finally {
      await redis.restart();
    }
  });

  it('does not start while lists cannot be loaded when a serving policy uses one', async () => {
    // The Redis restarted above is empty: a node reads the configuration that names the list
    // from its data dir, but Redis has no such list now. Killed again: nothing can be loaded.
    await node?.close();
    node = undefined;
    await redis.kill();
    const dataDir = dataDirs[0] as string;
    try {
      await expect(
        createNode(
          loadConfig({
            VIGIL_DATA_DIR: dataDir,
            VIGIL_ADMIN_TOKEN: adminToken,
            VIGIL_LOG_LEVEL: 'silent',
            VIGIL_IP_DATA: 'off',
            VIGIL_REDIS_URL: redis.url,
          }),
        ),
      ).rejects.toThrow(/lists could not be loaded from Redis and a serving policy needs them/);
      // With no policy using a list, a node starts, and takes list changes once Redis is back.
      node = await start();
      const created = await send(node, adminToken, 'POST', '/v1/admin/tenants', { name: 'later' });
      expect(created.statusCode).toBe(201);
      const tenant = created.json() as { id: string };
      const path = `/v1/admin/tenants/${tenant.id}/lists/later`;
      expect((await send(node, adminToken, 'PUT', path, { kind: 'watch' })).statusCode).toBe(503);
      await redis.restart();
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (status !== 201 && Date.now() < deadline) {
        status = (await send(node, adminToken, 'PUT', path, { kind: 'watch' })).statusCode;
        if (status !== 201) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(status).toBe(201);
    } finally {
      if (redis.pid === undefined) await redis.restart();
    }
  }, 60_000);
});
