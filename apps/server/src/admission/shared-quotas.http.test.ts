import { createRedisClient, whenReady } from '@vigil/store-redis';
import { RedisProcess } from '@vigil/store-redis/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode, type TestTenant } from '../../test/harness.js';
import { expectError, payment } from '../../test/support.js';

// A node on a private `redis-server` (started and killed here, never the shared one): its rate
// limits and event ids go through Redis, and without Redis it still answers, limited per node.

let redis: RedisProcess;
let t: TestNode;
let seq = 0;
const nextId = () => `shq-${++seq}`;

beforeAll(async () => {
  redis = await RedisProcess.start();
  t = await startTestNode({ VIGIL_REDIS_URL: redis.url });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await redis?.stop();
});

async function limitedTenant(name: string): Promise<TestTenant> {
  const tenant = await t.tenant(name);
  const patch = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, {
    rate_limit: { rps: 1, burst: 3 },
  });
  expect(patch.statusCode, patch.body).toBe(200);
  return tenant;
}

const decide = (tenant: TestTenant, id = nextId()) =>
  t.as(tenant.apiKey, 'POST', '/v1/decisions', payment(id));

describe('quotas and idempotency through Redis', () => {
  it('limits a tenant from its bucket in Redis, with 429 and Retry-After once it is empty', async () => {
    const tenant = await limitedTenant('shared-limit');
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await decide(tenant)).statusCode);
    // Burst 3, refilling one a second: the requests of this short loop get 3 at most (4 if a
    // second passed), and are refused from then on.
    const served = statuses.filter((status) => status === 200).length;
    expect(served).toBeGreaterThanOrEqual(3);
    expect(served).toBeLessThanOrEqual(4);
    expect(statuses.slice(served).every((status) => status === 429)).toBe(true);
    const refused = await decide(tenant);
    expectError(refused, 429, 'rate_limited');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The bucket is the tenant's key in Redis, where the other nodes take from it too.
    const client = createRedisClient(redis.url);
    try {
      await whenReady(client);
      expect(await client.exists(`vigil:rate:{t${tenant.id}}`)).toBe(1);
    } finally {
      client.disconnect();
    }
  });

  it('lets a batch larger than the node’s share wait for its tokens, and refuses one the bucket cannot cover', async () => {
    const tenant = await t.tenant('shared-batches');
    const patch = await t.admin('PATCH', `/v1/admin/tenants/${tenant.id}`, {
      rate_limit: { rps: 1, burst: 10 },
    });
    expect(patch.statusCode, patch.body).toBe(200);
    const batchOf = (size: number) => ({ events: Array.from({ length: size }, () => payment(nextId())) });
    // The node holds a share of a token or two; six more are taken from Redis while the batch waits.
    const first = await t.as(tenant.apiKey, 'POST', '/v1/decisions/batch', batchOf(6));
    expect(first.statusCode, first.body).toBe(200);
    expect((first.json() as { decisions: unknown[] }).decisions).toHaveLength(6);
    // About four tokens are left, between the node's share and Redis: six are refused.
    const refused = await t.as(tenant.apiKey, 'POST', '/v1/decisions/batch', batchOf(6));
    expectError(refused, 429, 'rate_limited');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('replays an event id from Redis and keeps its answer there for 24 h', async () => {
    const tenant = await t.tenant('shared-idempotency');
    const first = await decide(tenant, 'evt-shared-1');
    expect(first.statusCode, first.body).toBe(200);
    const again = await decide(tenant, 'evt-shared-1');
    expect(again.headers['idempotent-replay']).toBe('true');
    expect(again.json()).toEqual(first.json());
    const client = createRedisClient(redis.url);
    try {
      await whenReady(client);
      const key = `vigil:idem:decision:${tenant.id.length}:{${tenant.id}:evt-shared-1}`;
      await expect.poll(() => client.pttl(key)).toBeGreaterThan(23 * 60 * 60 * 1000);
    } finally {
      client.disconnect();
    }
  });

  it('still answers without Redis: limits per node, event ids from the node and its log, never a 5xx', async () => {
    const tenant = await limitedTenant('without-redis');
    const before = await decide(tenant, 'evt-before-outage');
    expect(before.statusCode, before.body).toBe(200);
    await redis.kill();
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await decide(tenant)).statusCode);
    expect(statuses.every((status) => status === 200 || status === 429)).toBe(true);
    // The local bucket, full at the fallback: at least its burst is served after the outage began.
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(2);
    expect(statuses.at(-1)).toBe(429);
    const other = await t.tenant('idempotent-without-redis');
    const first = await decide(other, 'evt-during-outage');
    expect(first.statusCode, first.body).toBe(200);
    const again = await decide(other, 'evt-during-outage');
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replay']).toBe('true');
    expect(again.json()).toEqual(first.json());
  });
});
