import { randomUUID } from 'node:crypto';
import { listDefinition, listEntry, listStoreContract, testClock } from '@vigil/engine/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient, whenReady } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';
import { RedisListStore, type RedisListStoreOptions } from './redis-list-store.js';
import { RedisProcess } from './testing/redis-processes.js';

/** The shared Redis of the test machine; every store uses a key prefix of its own and deletes it. */
const sharedUrl = process.env.VIGIL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const run = randomUUID().slice(0, 8);
let opened = 0;
const client = createRedisClient(sharedUrl, { commandTimeoutMs: 5000 });

afterAll(async () => {
  await client.quit();
});

/** A store whose `close` also deletes its keys (the contract closes each store it opens). */
class CleanedStore extends RedisListStore {
  override async close(): Promise<void> {
    await super.close();
    const keys = await this.keys();
    if (keys.length > 0) await client.del(...keys);
  }
}

function prefix(): string {
  return `vigil-test:${run}:${opened++}:`;
}

async function openStore(options: RedisListStoreOptions, on: RedisClient = client): Promise<RedisListStore> {
  await whenReady(on);
  const store = new CleanedStore(on, { sweepIntervalMs: 0, ...options });
  await store.ready();
  return store;
}

/** Polls `check` every 10 ms until it holds; fails after 5 s. */
async function eventually(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

listStoreContract('RedisListStore (single Redis)', (clock) =>
  openStore({ keyPrefix: prefix(), now: clock.now }),
);

describe('RedisListStore shared by two nodes', () => {
  it('shows an add, a removal, a bulk import and a list deletion made on one node on the other', async () => {
    const keyPrefix = prefix();
    const a = await openStore({ keyPrefix, deltaLimit: 100, chunkSize: 500 });
    const b = await openStore({ keyPrefix, deltaLimit: 100, chunkSize: 500 });
    try {
      await a.putList(listDefinition('t', 'ips', 'ip'));
      await eventually('the list on B', () => b.names('t').includes('ips'));
      await a.putEntries('t', 'ips', [listEntry('198.51.100.0/24'), listEntry('203.0.113.7')]);
      await eventually('the entries on B', () => b.contains('t', 'ips', '198.51.100.9'));
      expect(b.contains('t', 'ips', '203.0.113.7')).toBe(true);
      expect(await b.size('t', 'ips')).toBe(2);

      expect(await b.deleteEntry('t', 'ips', '198.51.100.0/24')).toBe(true);
      await eventually('the removal on A', () => !a.contains('t', 'ips', '198.51.100.9'));
      expect(a.contains('t', 'ips', '203.0.113.7')).toBe(true);

      // Past the delta limit: written in pipelines, announced once, reloaded by the other node.
      const bulk = Array.from({ length: 1200 }, (_, index) => listEntry(`10.${index >> 8}.${index & 255}.1`));
      expect(await a.putEntries('t', 'ips', bulk)).toEqual({ added: 1200, updated: 0 });
      await eventually('the import on B', async () => (await b.size('t', 'ips')) === 1201);
      expect(b.contains('t', 'ips', '10.4.175.1')).toBe(true);
      expect((await b.entries('t', 'ips', { limit: 2 })).map((entry) => entry.value)).toEqual([
        '10.0.0.1',
        '10.0.1.1',
      ]);

      expect(await b.deleteList('t', 'ips')).toBe(true);
      await eventually('the deletion on A', () => !a.names('t').includes('ips'));
      expect(a.contains('t', 'ips', '203.0.113.7')).toBe(false);
      // Made again on A with the same name: a new, empty list on both.
      await a.putList(listDefinition('t', 'ips', 'ip'));
      await a.putEntries('t', 'ips', [listEntry('192.0.2.1')]);
      await eventually('the new list on B', () => b.contains('t', 'ips', '192.0.2.1'));
      expect(await b.size('t', 'ips')).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('never matches or exports an expired entry on the other node, and sweeps it from Redis', async () => {
    const clock = testClock();
    const keyPrefix = prefix();
    const a = await openStore({ keyPrefix, now: clock.now });
    const b = await openStore({ keyPrefix, now: clock.now });
    try {
      await a.putList(listDefinition('t', 'emails', 'email'));
      await a.putEntries('t', 'emails', [
        listEntry('short@example.com', clock.now() + 1000, 'one second'),
        listEntry('kept@example.com', null, ''),
      ]);
      await eventually('the entries on B', () => b.contains('t', 'emails', 'short@example.com'));
      clock.advance(1000);
      expect(b.contains('t', 'emails', 'short@example.com')).toBe(false);
      expect(await b.entries('t', 'emails', { limit: 10 })).toEqual([
        { value: 'kept@example.com', expiresAt: null, note: '', updatedAt: 1 },
      ]);
      await b.sweep();
      expect(await b.size('t', 'emails')).toBe(1);
      // Gone from Redis too: a third node loading now holds only the live entry.
      const c = await openStore({ keyPrefix, now: clock.now });
      try {
        expect(await c.size('t', 'emails')).toBe(1);
      } finally {
        await RedisListStore.prototype.close.call(c);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('catches up with changes whose messages it missed: by the change hint, and after reconnecting', async () => {
    const server = await RedisProcess.start();
    const one = createRedisClient(server.url, { commandTimeoutMs: 2000, maxReconnectDelayMs: 100 });
    const two = createRedisClient(server.url, { commandTimeoutMs: 2000, maxReconnectDelayMs: 100 });
    one.on('error', () => {});
    two.on('error', () => {});
    const a = await openStore({}, one);
    const b = await openStore({ checkIntervalMs: 100 }, two);
    try {
      await a.putList(listDefinition('t', 'devices', 'device'));
      await a.putEntries('t', 'devices', [listEntry('dev-1')]);
      await eventually('the entry on B', () => b.contains('t', 'devices', 'dev-1'));
      // Something on the channel that is not a change is ignored.
      await one.publish('vigil:lists', 'not a change');
      const keys = await a.keys();
      const key = (suffix: string) => keys.find((name) => name.endsWith(`}:${suffix}`)) as string;
      // Writes whose messages are lost: made behind the stores' backs, announced to no one.
      const write = (value: string) =>
        one.eval(
          `redis.call('HSET', KEYS[1], ARGV[1], '\\t1\\t') redis.call('ZADD', KEYS[2], 0, ARGV[1]) return redis.call('INCR', KEYS[3])`,
          3,
          key('e'),
          key('v'),
          key('n'),
          value,
        );
      await write('dev-2');
      await one.incr('vigil:{lists}:changes');
      await eventually('the entry seen through the hint on B', () => b.contains('t', 'devices', 'dev-2'));
      // Without a hint: lost with the connection, and found by the comparison after reconnecting.
      await write('dev-3');
      await one.client('KILL', 'TYPE', 'pubsub');
      await eventually('the entry seen after reconnecting on B', () => b.contains('t', 'devices', 'dev-3'));
      expect(b.contains('t', 'devices', 'dev-1')).toBe(true);
      // A goes on applying B's changes after its own subscriber reconnected.
      await b.deleteEntry('t', 'devices', 'dev-1');
      await eventually('the removal on A', () => !a.contains('t', 'devices', 'dev-1'));
    } finally {
      await a.close();
      await b.close();
      one.disconnect();
      two.disconnect();
      await server.stop();
    }
  }, 30_000);
});

describe('RedisListStore under concurrent writes from two nodes', () => {
  // No periodic check here (60 s): the messages alone must bring both mirrors to Redis's state.
  it.each([7, 1234, 99_991])(
    'ends with both mirrors equal to what Redis holds (seed %i)',
    async (start) => {
      const keyPrefix = prefix();
      const a = await openStore({ keyPrefix, deltaLimit: 8, chunkSize: 5, checkIntervalMs: 60_000 });
      const b = await openStore({ keyPrefix, deltaLimit: 8, chunkSize: 5, checkIntervalMs: 60_000 });
      try {
        await a.putList(listDefinition('t', 'mixed'));
        await eventually('the list on B', () => b.names('t').includes('mixed'));
        const pool = Array.from({ length: 40 }, (_, index) => `v-${index}`);
        // A fixed pseudo-random sequence, so a failure can be replayed.
        let seed = start;
        const random = (below: number) => {
          seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
          return seed % below;
        };
        const pick = () => pool[random(pool.length)] as string;
        const work = async (store: RedisListStore) => {
          for (let step = 0; step < 150; step++) {
            const choice = random(10);
            if (choice < 5) await store.putEntries('t', 'mixed', [listEntry(pick())]);
            else if (choice < 9) await store.deleteEntry('t', 'mixed', pick());
            else {
              // Past the delta limit: a bulk write.
              const values = new Set(Array.from({ length: 12 }, pick));
              await store.putEntries(
                't',
                'mixed',
                [...values].map((value) => listEntry(value)),
              );
            }
          }
        };
        await Promise.all([work(a), work(b)]);
        const keys = await a.keys();
        const hash = keys.find((key) => key.endsWith('}:e')) as string;
        const held = new Set(await client.hkeys(hash));
        await eventually('both mirrors equal to Redis', () =>
          pool.every(
            (value) =>
              a.contains('t', 'mixed', value) === held.has(value) &&
              b.contains('t', 'mixed', value) === held.has(value),
          ),
        );
        expect((await a.entries('t', 'mixed', { limit: 100 })).map((entry) => entry.value).sort()).toEqual(
          [...held].sort(),
        );
      } finally {
        await a.close();
        await b.close();
      }
    },
    30_000,
  );
});

describe('RedisListStore when Redis is unreachable', () => {
  it('answers lookups from its mirror, fails writes with RedisUnavailableError, and follows again after', async () => {
    const server = await RedisProcess.start();
    const own = createRedisClient(server.url, { commandTimeoutMs: 500, maxReconnectDelayMs: 100 });
    own.on('error', () => {});
    const a = await openStore({ checkIntervalMs: 100 }, own);
    const other = createRedisClient(server.url, { commandTimeoutMs: 500, maxReconnectDelayMs: 100 });
    other.on('error', () => {});
    const b = await openStore({ checkIntervalMs: 100 }, other);
    try {
      await a.putList(listDefinition('t', 'cards', 'card'));
      await a.putEntries('t', 'cards', [listEntry('card-1')]);
      await eventually('the entry on B', () => b.contains('t', 'cards', 'card-1'));
      await server.kill();
      expect(a.contains('t', 'cards', 'card-1')).toBe(true);
      expect(await b.lookup('t', [{ list: 'cards', value: 'card-1' }])).toEqual([true]);
      await expect(a.putEntries('t', 'cards', [listEntry('card-2')])).rejects.toBeInstanceOf(
        RedisUnavailableError,
      );
      await expect(a.deleteEntry('t', 'cards', 'card-1')).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(a.putList(listDefinition('t', 'more'))).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(a.entries('t', 'cards', { limit: 10 })).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(a.contains('t', 'cards', 'card-2')).toBe(false);
      expect(b.contains('t', 'cards', 'card-1')).toBe(true);

      // The server comes back empty (no persistence): each node reloads what Redis now holds.
      await server.restart();
      await whenReady(own, 5000);
      await a.putList(listDefinition('t', 'cards', 'card'));
      await a.putEntries('t', 'cards', [listEntry('card-3')]);
      await eventually('B following again', () => b.contains('t', 'cards', 'card-3'));
      expect(b.contains('t', 'cards', 'card-1')).toBe(false);
    } finally {
      await RedisListStore.prototype.close.call(a);
      await RedisListStore.prototype.close.call(b);
      own.disconnect();
      other.disconnect();
      await server.stop();
    }
  }, 30_000);

  it('is not ready, and refuses writes, until it could load the lists', async () => {
    const server = await RedisProcess.start();
    const port = server.port;
    await server.kill();
    const own = createRedisClient(`redis://127.0.0.1:${port}`, {
      commandTimeoutMs: 500,
      maxReconnectDelayMs: 100,
    });
    own.on('error', () => {});
    const store = new RedisListStore(own, { checkIntervalMs: 100, sweepIntervalMs: 0 });
    try {
      let ready = false;
      const loading = store.ready().then(() => {
        ready = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(ready).toBe(false);
      expect(store.loaded).toBe(false);
      await expect(store.putList(listDefinition('t', 'x'))).rejects.toBeInstanceOf(RedisUnavailableError);
      await server.restart();
      await loading;
      expect(store.loaded).toBe(true);
      await store.putList(listDefinition('t', 'x'));
      expect(store.names('t')).toEqual(['x']);
    } finally {
      await store.close();
      own.disconnect();
      await server.stop();
    }
  }, 30_000);
});
