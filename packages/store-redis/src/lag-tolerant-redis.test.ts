import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, LagTolerantRedis, type RedisClient, whenReady } from './redis-client.js';
import { RedisProcess } from './testing/redis-processes.js';

/** Keeps the event loop busy for `ms`, as a node at full load does between two turns. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

const outcome = (command: Promise<unknown>) =>
  command.then(
    (reply) => ({ reply }),
    (error: Error) => ({ error: error.message }),
  );

describe('the command timeout of a single-server client', () => {
  let server: RedisProcess;
  let client: RedisClient;

  beforeAll(async () => {
    server = await RedisProcess.start();
    client = createRedisClient(server.url, { commandTimeoutMs: 50, maxReconnectDelayMs: 100 });
    client.on('error', () => {});
    await whenReady(client);
  });

  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('is a LagTolerantRedis', () => {
    expect(client).toBeInstanceOf(LagTolerantRedis);
  });

  it('does not fail a command Redis answered in time when the event loop was busy past the timeout', async () => {
    for (let round = 0; round < 5; round++) {
      const commands = [client.ping(), client.set(`lag-${round}`, 'x'), client.get(`lag-${round}`)];
      // Redis answers within a millisecond; this process only reads the replies after 150 ms.
      blockEventLoop(150);
      expect(await Promise.all(commands.map(outcome))).toEqual([
        { reply: 'PONG' },
        { reply: 'OK' },
        { reply: 'x' },
      ]);
    }
  });

  it('still fails a command Redis does not answer, and works again once it does', async () => {
    server.pause();
    try {
      const started = performance.now();
      expect(await outcome(client.ping())).toEqual({ error: 'Command timed out' });
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      server.resume();
    }
    expect(await client.ping()).toBe('PONG');
  });
});
