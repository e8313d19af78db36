import { listDefinition } from '@vigil/engine/testing';
import { describe, expect, it } from 'vitest';
import { createRedisClient, whenReady } from './redis-client.js';
import { RedisListStore } from './redis-list-store.js';
import { RedisProcess } from './testing/redis-processes.js';

/**
 * The bulk import figure of docs/LISTS.md: 1M entries into a private `redis-server`, through one
 * store, and the time until a second store (another node) holds them all. Heavy, so it runs only
 * with `VIGIL_LIST_IMPORT_ENTRIES` set (the number of entries, e.g. 1000000):
 *
 *   VIGIL_LIST_IMPORT_ENTRIES=1000000 npx vitest run packages/store-redis/src/redis-list-store.import.test.ts
 */
const count = Number(process.env.VIGIL_LIST_IMPORT_ENTRIES ?? 0);

describe.runIf(count > 0)('RedisListStore bulk import', () => {
  it(`imports ${count} entries and shows them on another node`, async () => {
    const server = await RedisProcess.start();
    const options = { commandTimeoutMs: 10_000 };
    const one = createRedisClient(server.url, options);
    const two = createRedisClient(server.url, options);
    await Promise.all([whenReady(one), whenReady(two)]);
    const a = new RedisListStore(one, { sweepIntervalMs: 0 });
    const b = new RedisListStore(two, { sweepIntervalMs: 0 });
    try {
      await Promise.all([a.ready(), b.ready()]);
      await a.putList(listDefinition('t', 'ips', 'ip'));
      const now = Date.now();
      const entries = Array.from({ length: count }, (_, index) => ({
        value: `${10 + (index >>> 24)}.${(index >>> 16) & 255}.${(index >>> 8) & 255}.${index & 255}`,
        expiresAt: index % 2 === 0 ? null : now + 86_400_000,
        note: index % 10 === 0 ? 'imported' : null,
        updatedAt: now,
      }));
      const redisCpu = async () => {
        const info = await one.info('cpu');
        return ['used_cpu_user', 'used_cpu_sys'].reduce(
          (sum, name) => sum + Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0),
          0,
        );
      };
      const redisBefore = await redisCpu();
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      const result = await a.putEntries('t', 'ips', entries);
      const written = performance.now() - started;
      const writerCpu = process.cpuUsage(cpuBefore);
      const redisWriteSeconds = (await redisCpu()) - redisBefore;
      while ((await b.size('t', 'ips')) < count) await new Promise((resolve) => setTimeout(resolve, 20));
      const seen = performance.now() - started;
      const cpu = process.cpuUsage(cpuBefore);
      const redisSeconds = (await redisCpu()) - redisBefore;
      expect(result).toEqual({ added: count, updated: 0 });
      expect(b.contains('t', 'ips', entries[count - 1]?.value)).toBe(true);
      console.info(
        `import of ${count} entries: written and in the writer's mirror in ${Math.round(written)} ms ` +
          `(CPU: writer ${Math.round((writerCpu.user + writerCpu.system) / 1000)} ms, ` +
          `redis-server ${Math.round(redisWriteSeconds * 1000)} ms), ` +
          `in the other node's mirror after ${Math.round(seen)} ms; CPU: this process (both nodes) ` +
          `${Math.round((cpu.user + cpu.system) / 1000)} ms, redis-server ${Math.round(redisSeconds * 1000)} ms`,
      );
    } finally {
      await a.close();
      await b.close();
      one.disconnect();
      two.disconnect();
      await server.stop();
    }
  }, 120_000);
});
