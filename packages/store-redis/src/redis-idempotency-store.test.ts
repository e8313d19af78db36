import { randomUUID } from 'node:crypto';
import { idempotencyStoreContract, sampleResponse } from '@vigil/engine/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisClient, whenReady } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';
import { RedisIdempotencyStore } from './redis-idempotency-store.js';
import { RedisProcess } from './testing/redis-processes.js';

/** The shared Redis of the test machine; every test uses a key prefix of its own and deletes it. */
const sharedUrl = process.env.VIGIL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const run = randomUUID().slice(0, 8);
let opened = 0;
const client = createRedisClient(sharedUrl, { commandTimeoutMs: 2000 });
/** A second connection: the other node. */
const otherClient = createRedisClient(sharedUrl, { commandTimeoutMs: 2000 });

afterAll(async () => {
  const keys = await client.keys(`vigil-test:${run}:*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
  await otherClient.quit();
});

idempotencyStoreContract('RedisIdempotencyStore', async () => {
  await Promise.all([whenReady(client), whenReady(otherClient)]);
  const keyPrefix = `vigil-test:${run}:${opened++}:`;
  return {
    a: new RedisIdempotencyStore(client, { keyPrefix }),
    b: new RedisIdempotencyStore(otherClient, { keyPrefix }),
    close: async () => {
      const keys = await client.keys(`${keyPrefix}*`);
      if (keys.length > 0) await client.del(...keys);
    },
  };
});

describe('RedisIdempotencyStore', () => {
  it('keeps a pending marker for its short life and an answer for the window, in one hash-tagged key', async () => {
    await whenReady(client);
    const keyPrefix = `vigil-test:${run}:${opened++}:`;
    const store = new RedisIdempotencyStore(client, { keyPrefix });
    await store.claim('t_1', 'decision', 'evt-1', 10_000);
    const key = `${keyPrefix}idem:decision:3:{t_1:evt-1}`;
    const pendingTtl = await client.pttl(key);
    expect(pendingTtl).toBeGreaterThan(0);
    expect(pendingTtl).toBeLessThanOrEqual(10_000);
    await store.complete('t_1', 'decision', 'evt-1', sampleResponse('evt-1'), 24 * 60 * 60 * 1000);
    expect(await client.pttl(key)).toBeGreaterThan(23 * 60 * 60 * 1000);
    expect(JSON.parse(((await client.get(key)) as string).slice(1))).toEqual(sampleResponse('evt-1'));
    expect(await client.keys(`${keyPrefix}*`)).toEqual([key]);
  });

  it('fails fast with RedisUnavailableError when Redis is frozen or gone', async () => {
    const server = await RedisProcess.start();
    const own = createRedisClient(server.url, { commandTimeoutMs: 100 });
    own.on('error', () => {});
    try {
      await whenReady(own);
      const store = new RedisIdempotencyStore(own);
      expect(await store.claim('t_1', 'decision', 'a', 1000)).toEqual({ state: 'claimed' });
      server.pause();
      await expect(store.claim('t_1', 'decision', 'b', 1000)).rejects.toThrow(
        new RedisUnavailableError('Redis idempotency store: Command timed out'),
      );
      await server.kill();
      await expect(store.claim('t_1', 'decision', 'c', 1000)).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(store.complete('t_1', 'decision', 'c', null, 1000)).rejects.toBeInstanceOf(
        RedisUnavailableError,
      );
      await expect(store.release('t_1', 'decision', 'c')).rejects.toBeInstanceOf(RedisUnavailableError);
    } finally {
      own.disconnect();
      await server.stop();
    }
  });
});
