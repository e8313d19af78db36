import { randomUUID } from 'node:crypto';
import { type CounterStore, MemoryCounterStore } from '@vigil/engine';
import { addOperation, counterSpec, counterStoreContract, readOperation } from '@vigil/engine/testing';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createRedisClient, whenReady } from './redis-client.js';
import { RedisCounterStore } from './redis-counter-store.js';

/** The shared Redis of the test machine; every test uses a key prefix of its own and deletes it. */
const sharedUrl = process.env.VIGIL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const run = randomUUID().slice(0, 8);
let opened = 0;
const client = createRedisClient(sharedUrl, { commandTimeoutMs: 2000 });

async function openStore(options: { exactDistinctLimit?: number; refreshMs?: number; prefix?: string } = {}) {
  await whenReady(client);
  const store = new RedisCounterStore(client, {
    keyPrefix: options.prefix ?? `vigil-test:${run}:${opened++}:`,
    exactDistinctLimit: options.exactDistinctLimit ?? 100,
    refreshMs: options.refreshMs ?? 1000,
  });
  await store.ready();
  return store;
}

async function closeStore(store: CounterStore): Promise<void> {
  const redisStore = store as RedisCounterStore;
  redisStore.close();
  const keys = await redisStore.keys();
  if (keys.length > 0) await client.del(...keys);
}

afterAll(async () => {
  await client.quit();
});

// A limit of 100 keeps the suite's HyperLogLog case at 2,000 values (its floor), which is quick
// over the network; the switch itself is the same code whatever the limit.
counterStoreContract('RedisCounterStore (single Redis)', () => openStore(), {
  exactDistinctLimit: 100,
  close: closeStore,
});

describe('RedisCounterStore on a single Redis', () => {
  const hour = 3_600_000;
  const at = 1_800_000_000_000;

  it('counts with the default exact distinct limit of 1,000, as MemoryCounterStore', async () => {
    await whenReady(client);
    const store = new RedisCounterStore(client, { keyPrefix: `vigil-test:${run}:${opened++}:` });
    await store.ready();
    try {
      const distinct = counterSpec('distinct');
      let value: (number | null)[] = [];
      for (let index = 0; index < 1000; index++)
        value = await store.apply(at, [addOperation(distinct, 'd', `v-${index}`)]);
      expect(value).toEqual([1000]);
      // Still exact: the 1,000 values are a sorted set, no HyperLogLog yet.
      expect((await store.keys()).filter((key) => key.includes(':h:'))).toEqual([]);
      await store.apply(at, [addOperation(distinct, 'd', 'v-1000')]);
      expect((await store.keys()).some((key) => key.includes(':h:'))).toBe(true);
    } finally {
      await closeStore(store);
    }
  });

  it("applies an event's updates once when a call with the same event key is made again", async () => {
    const store = await openStore();
    try {
      const count = counterSpec('count');
      const sum = counterSpec('sum');
      const event = [addOperation(count, 'acct', null), addOperation(sum, 'acct', 5)];
      expect(await store.apply(at, event, 'd:evt-1')).toEqual([1, 5]);
      // The retry of a call whose first attempt ran only reads.
      expect(await store.apply(at, event, 'd:evt-1')).toEqual([1, 5]);
      expect(await store.apply(at, event, 'd:evt-2')).toEqual([2, 10]);
      // Without a key (backfill, rebuild) every call counts.
      expect(await store.apply(at, event)).toEqual([3, 15]);
      expect(await store.apply(at, event)).toEqual([4, 20]);
    } finally {
      await closeStore(store);
    }
  });

  it('gives every key a TTL of window plus one bucket, so idle keys expire in Redis', async () => {
    const store = await openStore();
    try {
      const windowMs = 600;
      const counters = (['count', 'sum', 'last', 'distinct'] as const).map((aggregation) =>
        counterSpec(aggregation, windowMs),
      );
      await store.apply(
        Date.now(),
        counters.map((counter) => addOperation(counter, 'k', counter.aggregation === 'distinct' ? 'x' : 1)),
      );
      const keys = await store.keys();
      expect(keys).toHaveLength(4);
      for (const key of keys) {
        const ttl = await client.pttl(key);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(windowMs + windowMs / 60);
      }
      // Only updates set a TTL: a read-only key never appears.
      await store.apply(Date.now(), [readOperation(counterSpec('count', windowMs, 'other'), 'k')]);
      expect(await store.keys()).toHaveLength(4);
      await vi.waitFor(async () => expect(await store.keys()).toEqual([]), { timeout: 5000, interval: 100 });
    } finally {
      await closeStore(store);
    }
  });

  it('sees a drop made by another node once it refreshes the registry', async () => {
    const prefix = `vigil-test:${run}:${opened++}:`;
    const nodeA = await openStore({ prefix, refreshMs: 50 });
    const nodeB = await openStore({ prefix, refreshMs: 50 });
    try {
      const count = counterSpec('count', hour, 't\u0000logins\u00001');
      await nodeA.apply(at, [addOperation(count, 'k')]);
      expect(await nodeB.apply(at, [addOperation(count, 'k')])).toEqual([2]);
      await nodeA.drop([count.id]);
      expect(await nodeA.apply(at, [readOperation(count, 'k')])).toEqual([0]);
      await vi.waitFor(async () => expect(await nodeB.apply(at, [readOperation(count, 'k')])).toEqual([0]), {
        timeout: 5000,
        interval: 50,
      });
      // Both nodes count into the new generation together.
      await nodeB.apply(at, [addOperation(count, 'k')]);
      expect(await nodeA.apply(at, [addOperation(count, 'k')])).toEqual([2]);
      // A node started after the drop loads the registry before serving.
      const nodeC = await openStore({ prefix });
      expect(await nodeC.apply(at, [readOperation(count, 'k')])).toEqual([2]);
      nodeC.close();
    } finally {
      nodeB.close();
      await closeStore(nodeA);
    }
  });

  it('keeps keys of different ids, keys and separators apart', async () => {
    const store = await openStore();
    try {
      // Ids and keys that would collide if the key layout simply concatenated them.
      const a = counterSpec('count', hour, 't\u0000a');
      const b = counterSpec('count', hour, 't\u0000a}');
      const c = counterSpec('count', hour, '}t');
      const d = counterSpec('count', hour, '');
      expect(
        await store.apply(at, [
          addOperation(a, '}x'),
          addOperation(b, 'x'),
          addOperation(c, '{'),
          addOperation(d, ''),
          addOperation(a, '}x'),
        ]),
      ).toEqual([1, 1, 1, 1, 2]);
      expect(store.stateKey('t\u0000a', 'k')).not.toEqual(store.stateKey('t\u0000a', 'k:'));
    } finally {
      await closeStore(store);
    }
  });

  it('keeps doubles exact and non-finite sums readable', async () => {
    const store = await openStore();
    try {
      const sum = counterSpec('sum');
      const avg = counterSpec('avg');
      expect(await store.apply(at, [addOperation(sum, 'k', 0.1), addOperation(avg, 'k', 0.1)])).toEqual([
        0.1, 0.1,
      ]);
      expect(await store.apply(at, [addOperation(sum, 'k', 0.2), addOperation(avg, 'k', 1 / 3)])).toEqual([
        0.1 + 0.2,
        (0.1 + 1 / 3) / 2,
      ]);
      expect(await store.apply(at, [addOperation(sum, 'big', Number.MAX_VALUE)])).toEqual([Number.MAX_VALUE]);
      expect(await store.apply(at, [addOperation(sum, 'big', Number.MAX_VALUE)])).toEqual([
        Number.POSITIVE_INFINITY,
      ]);
      // NaN and null do not update a numeric counter; the read still answers.
      expect(
        await store.apply(at, [addOperation(sum, 'k', Number.NaN), addOperation(sum, 'k', null)]),
      ).toEqual([0.1 + 0.2, 0.1 + 0.2]);
    } finally {
      await closeStore(store);
    }
  });

  it('answers as MemoryCounterStore over a long random run (every aggregation, gaps, idle keys)', async () => {
    const store = await openStore({ exactDistinctLimit: 1000 });
    const memory = new MemoryCounterStore();
    try {
      const aggregations = ['count', 'sum', 'avg', 'min', 'max', 'first_seen', 'last', 'distinct'] as const;
      const counters = aggregations.flatMap((aggregation) => [
        counterSpec(aggregation, 30_000, `t\u0000${aggregation}\u00001`),
        counterSpec(aggregation, hour, `t\u0000${aggregation}\u00002`),
      ]);
      let seed = 7;
      const random = (n: number) => {
        seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
        return (seed >>> 8) % n;
      };
      let now = at;
      for (let step = 0; step < 1500; step++) {
        // Mostly small steps; now and then a gap of many buckets or whole windows.
        const jump = random(100);
        now += jump < 90 ? random(2000) : jump < 97 ? random(40) * 60_000 : random(3) * 2 * hour;
        const operations = Array.from({ length: 1 + random(6) }, () => {
          const counter = counters[random(counters.length)] as (typeof counters)[number];
          const key = `k${random(4)}`;
          // Values in halves keep sums exact whatever the order of addition.
          const value = counter.aggregation === 'distinct' ? `v${random(30)}` : (random(2001) - 1000) / 2;
          return random(4) === 0 ? readOperation(counter, key) : addOperation(counter, key, value);
        });
        const expected = memory.applyNow(now, operations);
        expect(await store.apply(now, operations), `step ${step}`).toEqual(expected);
      }
    } finally {
      await closeStore(store);
    }
  });

  it('refuses a key prefix that would move the hash tag', () => {
    expect(() => new RedisCounterStore(client, { keyPrefix: 'a{b}:' })).toThrow(/must not contain/);
  });
});
