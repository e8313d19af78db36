import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisClient, whenReady } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';
import { RedisRateLimiter } from './redis-rate-limiter.js';

const sharedUrl = process.env.VIGIL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const run = randomUUID().slice(0, 8);
let opened = 0;
const client = createRedisClient(sharedUrl, { commandTimeoutMs: 2000 });

afterAll(async () => {
  const keys = await client.keys(`vigil-test:${run}:*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
});

/** Two limiters (two nodes) on one fresh prefix, each with its own clock. */
async function nodes(start = 1_800_000_000_000) {
  await whenReady(client);
  const keyPrefix = `vigil-test:${run}:${opened++}:`;
  const clocks = { a: start, b: start };
  return {
    keyPrefix,
    clocks,
    a: new RedisRateLimiter(client, { keyPrefix, now: () => clocks.a }),
    b: new RedisRateLimiter(client, { keyPrefix, now: () => clocks.b }),
  };
}

describe('RedisRateLimiter', () => {
  it('grants whole tokens from a full bucket, shared by every node, never below zero', async () => {
    const { a, b } = await nodes();
    expect(await a.take('t1', 10, 20, 8)).toEqual({ granted: 8, remaining: 12 });
    expect(await b.take('t1', 10, 20, 8)).toEqual({ granted: 8, remaining: 4 });
    expect(await a.take('t1', 10, 20, 8)).toEqual({ granted: 4, remaining: 0 });
    expect(await b.take('t1', 10, 20, 8)).toEqual({ granted: 0, remaining: 0 });
    // Another tenant has a bucket of its own.
    expect((await b.take('t2', 10, 20, 8)).granted).toBe(8);
  });

  it('refills at the rate from the newest time any node sent, up to the burst', async () => {
    const { a, b, clocks } = await nodes();
    await a.take('t1', 10, 20, 20);
    clocks.a += 250; // 2.5 tokens
    expect(await a.take('t1', 10, 20, 8)).toEqual({ granted: 2, remaining: 0.5 });
    // Node B's clock runs 1 s behind: its calls add nothing, and take nothing twice.
    clocks.b = clocks.a - 1000;
    expect(await b.take('t1', 10, 20, 8)).toEqual({ granted: 0, remaining: 0.5 });
    clocks.a += 50;
    expect(await a.take('t1', 10, 20, 8)).toEqual({ granted: 1, remaining: 0 });
    clocks.a += 60_000;
    expect(await a.take('t1', 10, 20, 100)).toEqual({ granted: 20, remaining: 0 });
  });

  it('lets its key expire once the bucket would be full again', async () => {
    const { a, keyPrefix } = await nodes();
    await a.take('t_1', 100, 200, 1);
    const ttl = await client.pttl(`${keyPrefix}rate:{tt_1}`);
    // A full refill takes 2 s; the key lives that long plus a second.
    expect(ttl).toBeGreaterThan(2000);
    expect(ttl).toBeLessThanOrEqual(3000);
  });

  it('grants everything without asking Redis when the tenant has no rate limit', async () => {
    const dead = createRedisClient('redis://127.0.0.1:1', { connectTimeoutMs: 100 });
    dead.on('error', () => {});
    try {
      const limiter = new RedisRateLimiter(dead);
      expect(await limiter.take('t1', 0, 0, 5)).toEqual({ granted: 5, remaining: 0 });
      await expect(limiter.take('t1', 10, 10, 5)).rejects.toBeInstanceOf(RedisUnavailableError);
    } finally {
      dead.disconnect();
    }
  });
});
