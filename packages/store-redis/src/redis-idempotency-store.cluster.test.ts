import { randomUUID } from 'node:crypto';
import { idempotencyStoreContract } from '@vigil/engine/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient, whenReady } from './redis-client.js';
import { RedisIdempotencyStore } from './redis-idempotency-store.js';
import { RedisRateLimiter } from './redis-rate-limiter.js';
import { RedisCluster } from './testing/redis-processes.js';

/**
 * The idempotency store and the rate limiter on a real three-master Redis Cluster this file starts
 * (free ports, temp dirs) and stops by PID afterwards, also when a test fails.
 */
let cluster: RedisCluster | undefined;
let clients: RedisClient[] = [];
const run = randomUUID().slice(0, 8);
let opened = 0;

beforeAll(async () => {
  cluster = await RedisCluster.start(3);
  const url = cluster.url;
  clients = [
    createRedisClient(url, { commandTimeoutMs: 2000 }),
    createRedisClient(url, { commandTimeoutMs: 2000 }),
  ];
  await Promise.all(clients.map((client) => whenReady(client, 10_000)));
}, 60_000);

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await cluster?.stop();
});

idempotencyStoreContract('RedisIdempotencyStore on a cluster', async () => {
  const keyPrefix = `vigil-test:${run}:${opened++}:`;
  return {
    a: new RedisIdempotencyStore(clients[0] as RedisClient, { keyPrefix }),
    b: new RedisIdempotencyStore(clients[1] as RedisClient, { keyPrefix }),
  };
});

describe('RedisRateLimiter on a cluster', () => {
  it('shares one bucket per tenant between two clients', async () => {
    const keyPrefix = `vigil-test:${run}:${opened++}:`;
    const now = () => 1_800_000_000_000;
    const a = new RedisRateLimiter(clients[0] as RedisClient, { keyPrefix, now });
    const b = new RedisRateLimiter(clients[1] as RedisClient, { keyPrefix, now });
    const grants = await Promise.all(
      Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? a : b).take('t1', 10, 20, 3)),
    );
    expect(grants.reduce((sum, grant) => sum + grant.granted, 0)).toBe(20);
  });
});
