import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createRedisClient, whenReady } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';
import { RedisReplayGuard } from './redis-replay-guard.js';
import { RedisProcess } from './testing/redis-processes.js';

const sharedUrl = process.env.VIGIL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const client = createRedisClient(sharedUrl, { commandTimeoutMs: 2000 });
const prefix = `vigil-test:${randomUUID().slice(0, 8)}:`;

afterAll(async () => {
  const keys = await client.keys(`${prefix}*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
});

describe('RedisReplayGuard', () => {
  it('accepts a signature once, on every node', async () => {
    await whenReady(client);
    const nodeA = new RedisReplayGuard(client, { keyPrefix: prefix });
    const nodeB = new RedisReplayGuard(client, { keyPrefix: prefix });
    expect(await nodeA.firstUse('k_1:abc')).toBe(true);
    expect(await nodeA.firstUse('k_1:abc')).toBe(false);
    expect(await nodeB.firstUse('k_1:abc')).toBe(false);
    expect(await nodeB.firstUse('k_1:abd')).toBe(true);
    expect(await nodeA.firstUse('k_2:abc')).toBe(true);
  });

  it('answers concurrent uses of one signature with exactly one true', async () => {
    const guard = new RedisReplayGuard(client, { keyPrefix: prefix });
    const answers = await Promise.all(Array.from({ length: 20 }, () => guard.firstUse('k_1:race')));
    expect(answers.filter(Boolean)).toHaveLength(1);
  });

  it('remembers a signature for the window, then forgets it', async () => {
    const guard = new RedisReplayGuard(client, { keyPrefix: prefix, windowMs: 300 });
    expect(await guard.firstUse('k_1:short')).toBe(true);
    const ttl = await client.pttl(`${prefix}nonce:k_1:short`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
    expect(await guard.firstUse('k_1:short')).toBe(false);
    await vi.waitFor(async () => expect(await client.exists(`${prefix}nonce:k_1:short`)).toBe(0), {
      timeout: 5000,
      interval: 50,
    });
    expect(await guard.firstUse('k_1:short')).toBe(true);
    // The default window covers the ±300 s timestamp tolerance.
    expect(await new RedisReplayGuard(client, { keyPrefix: prefix }).firstUse('k_1:long')).toBe(true);
    expect(await client.pttl(`${prefix}nonce:k_1:long`)).toBeGreaterThan(590_000);
  });

  it('fails fast with RedisUnavailableError when Redis does not answer', async () => {
    const server = await RedisProcess.start();
    const own = createRedisClient(server.url, { commandTimeoutMs: 100 });
    own.on('error', () => {});
    try {
      await whenReady(own);
      const guard = new RedisReplayGuard(own);
      expect(await guard.firstUse('k_1:x')).toBe(true);
      server.pause();
      await expect(guard.firstUse('k_1:y')).rejects.toThrow(
        new RedisUnavailableError('Redis replay guard: Command timed out'),
      );
      await server.kill();
      await expect(guard.firstUse('k_1:y')).rejects.toBeInstanceOf(RedisUnavailableError);
    } finally {
      own.disconnect();
      await server.stop();
    }
  });
});
