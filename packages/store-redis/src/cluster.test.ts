import { randomUUID } from 'node:crypto';
import type { CounterStore } from '@vigil/engine';
import { addOperation, counterSpec, counterStoreContract } from '@vigil/engine/testing';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient, whenReady } from './redis-client.js';
import { RedisCounterStore } from './redis-counter-store.js';
import { RedisCluster } from './testing/redis-processes.js';

/**
 * The adapters against a real three-master Redis Cluster this file starts (free ports, temp
 * dirs) and stops by PID afterwards, also when a test fails.
 */
let cluster: RedisCluster | undefined;
let client: RedisClient | undefined;
const run = randomUUID().slice(0, 8);
let opened = 0;

beforeAll(async () => {
  cluster = await RedisCluster.start(3);
  client = createRedisClient(cluster.url, { commandTimeoutMs: 2000 });
  await whenReady(client, 10_000);
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

async function openStore(): Promise<RedisCounterStore> {
  const store = new RedisCounterStore(client as RedisClient, {
    keyPrefix: `vigil-test:${run}:${opened++}:`,
    exactDistinctLimit: 100,
  });
  await store.ready();
  return store;
}

async function closeStore(store: CounterStore): Promise<void> {
  const redisStore = store as RedisCounterStore;
  redisStore.close();
  for (const key of await redisStore.keys()) await (client as RedisClient).del(key);
}

counterStoreContract('RedisCounterStore (three-master cluster)', openStore, {
  exactDistinctLimit: 100,
  close: closeStore,
});

describe('RedisCounterStore on a cluster', () => {
  it('is a cluster client', () => {
    expect(client).toBeInstanceOf(Cluster);
    expect((client as Cluster).nodes('master')).toHaveLength(3);
  });

  it('puts one entity’s keys in one slot and spreads entities over the masters', async () => {
    const store = await openStore();
    try {
      const ids = ['t1\u0000a\u00001', 't1\u0000b\u00001', 't1\u0000c\u00002'];
      const slots = async (key: string) =>
        new Set(
          await Promise.all(
            ids.flatMap((id) => {
              const base = store.stateKey(id, key);
              return [base, `${base}:e`, `${base}:h:123`].map(
                (name) => (client as Cluster).cluster('KEYSLOT', name) as Promise<number>,
              );
            }),
          ),
        );
      expect((await slots('203.0.113.7')).size).toBe(1);
      expect((await slots('}weird{')).size).toBe(1);
      // Many entities of one event land on several slots, served by different masters.
      const counters = ids.map((id) => counterSpec('count', 3_600_000, id));
      const operations = Array.from({ length: 30 }, (_, index) =>
        addOperation(counters[index % 3] as (typeof counters)[number], `entity-${index % 10}`),
      );
      // Every (counter, entity) pair is distinct (3 and 10 are coprime).
      expect(await store.apply(1_800_000_000_000, operations)).toEqual(operations.map(() => 1));
      const again = await store.apply(1_800_000_000_000, operations);
      expect(again).toEqual(operations.map(() => 2));
      const perMaster = await Promise.all((client as Cluster).nodes('master').map((node) => node.dbsize()));
      expect(perMaster.filter((size) => size > 0).length).toBeGreaterThan(1);
    } finally {
      await closeStore(store);
    }
  });
});
