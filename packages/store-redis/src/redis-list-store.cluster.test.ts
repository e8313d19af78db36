import { randomUUID } from 'node:crypto';
import { listDefinition, listEntry, listStoreContract } from '@vigil/engine/testing';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient, whenReady } from './redis-client.js';
import { RedisListStore, type RedisListStoreOptions } from './redis-list-store.js';
import { RedisCluster } from './testing/redis-processes.js';

/**
 * The list store against a real three-master Redis Cluster this file starts (free ports, temp
 * dirs) and stops by PID afterwards.
 */
let cluster: RedisCluster | undefined;
let client: RedisClient | undefined;
const run = randomUUID().slice(0, 8);
let opened = 0;

beforeAll(async () => {
  cluster = await RedisCluster.start(3);
  client = createRedisClient(cluster.url, { commandTimeoutMs: 5000 });
  await whenReady(client, 10_000);
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

class CleanedStore extends RedisListStore {
  override async close(): Promise<void> {
    await super.close();
    for (const key of await this.keys()) await (client as RedisClient).del(key);
  }
}

async function openStore(options: RedisListStoreOptions): Promise<RedisListStore> {
  const store = new CleanedStore(client as RedisClient, { sweepIntervalMs: 0, ...options });
  await store.ready();
  return store;
}

const prefix = () => `vigil-test:${run}:${opened++}:`;

listStoreContract('RedisListStore (three-master cluster)', (clock) =>
  openStore({ keyPrefix: prefix(), now: clock.now }),
);

async function eventually(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('RedisListStore on a cluster', () => {
  it('keeps each list in one slot, spreads lists over the masters, and propagates changes', async () => {
    const keyPrefix = prefix();
    const a = await openStore({ keyPrefix, deltaLimit: 10, chunkSize: 50 });
    const b = await openStore({ keyPrefix });
    try {
      const names = Array.from({ length: 12 }, (_, index) => `list_${index}`);
      for (const name of names) {
        await a.putList(listDefinition('t', name));
        await a.putEntries('t', name, [listEntry(`v-${name}`, Date.now() + 60_000)]);
      }
      // One bulk write (past the delta limit), reloaded by the other node.
      await a.putEntries(
        't',
        'list_0',
        Array.from({ length: 120 }, (_, index) => listEntry(`bulk-${index}`)),
      );
      await eventually('every list on B', () => names.every((name) => b.contains('t', name, `v-${name}`)));
      await eventually('the bulk write on B', async () => (await b.size('t', 'list_0')) === 121);
      await b.deleteEntry('t', 'list_3', 'v-list_3');
      await eventually('the removal on A', () => !a.contains('t', 'list_3', 'v-list_3'));
      await b.deleteList('t', 'list_4');
      await eventually('the deletion on A', () => !a.names('t').includes('list_4'));

      const nodes = (client as Cluster).nodes('master');
      const keys = await a.keys();
      const slots = new Map<string, Set<number>>();
      for (const key of keys.filter((name) => name.includes(':l:'))) {
        const list = key.slice(key.indexOf('{'), key.lastIndexOf('}') + 1);
        const slot = (await (client as Cluster).cluster('KEYSLOT', key)) as number;
        slots.set(list, (slots.get(list) ?? new Set()).add(slot));
      }
      expect(slots.size).toBe(11);
      for (const set of slots.values()) expect(set.size).toBe(1);
      const perMaster = await Promise.all(nodes.map((node) => node.dbsize()));
      expect(perMaster.filter((size) => size > 0).length).toBeGreaterThan(1);
    } finally {
      await a.close();
      await RedisListStore.prototype.close.call(b);
    }
  });
});
