import { addOperation, counterSpec } from '@vigil/engine/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createRedisClient,
  type LagTolerantRedis,
  parseRedisUrl,
  type RedisClient,
  whenReady,
} from './redis-client.js';
import { RedisCounterStore, RedisUnavailableError } from './redis-counter-store.js';
import { freePort, RedisProcess } from './testing/redis-processes.js';

describe('parseRedisUrl', () => {
  it('reads a single server, TLS, credentials and database', () => {
    expect(parseRedisUrl('redis://localhost')).toEqual({
      cluster: false,
      tls: false,
      nodes: [{ host: 'localhost', port: 6379 }],
      username: undefined,
      password: undefined,
      db: 0,
    });
    expect(parseRedisUrl('rediss://vigil:p%40ss@redis.internal:6380/2')).toEqual({
      cluster: false,
      tls: true,
      nodes: [{ host: 'redis.internal', port: 6380 }],
      username: 'vigil',
      password: 'p@ss',
      db: 2,
    });
    expect(parseRedisUrl('redis://:secret@[::1]:7000').nodes).toEqual([{ host: '::1', port: 7000 }]);
    expect(parseRedisUrl('redis://:secret@[::1]:7000').password).toBe('secret');
  });

  it('reads a cluster as a list of seed nodes', () => {
    const target = parseRedisUrl('redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3');
    expect(target.cluster).toBe(true);
    expect(target.tls).toBe(false);
    expect(target.nodes).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '10.0.0.3', port: 6379 },
    ]);
    expect(parseRedisUrl('rediss+cluster://a:1').tls).toBe(true);
  });

  it('refuses what it cannot use, without echoing the password', () => {
    expect(() => parseRedisUrl('http://localhost')).toThrow(/must start with redis:\/\//);
    expect(() => parseRedisUrl('localhost:6379')).toThrow(/must start with/);
    expect(() => parseRedisUrl('redis://a:1,b:2')).toThrow(/redis\+cluster/);
    expect(() => parseRedisUrl('redis+cluster://a:1/0')).toThrow(/no database/);
    expect(() => parseRedisUrl('redis://a/x')).toThrow(/database must be a number/);
    expect(() => parseRedisUrl('redis://a:99999')).toThrow(/is not host\[:port\]/);
    expect(() => parseRedisUrl('redis://:hunter2@bad host')).toThrow(/is not host/);
    expect(() => parseRedisUrl('redis://:hunter2@bad host')).not.toThrow(/hunter2/);
  });
});

describe('a client against a Redis that fails', () => {
  let server: RedisProcess;
  let client: RedisClient;

  beforeAll(async () => {
    server = await RedisProcess.start();
    client = createRedisClient(server.url, { commandTimeoutMs: 100, maxReconnectDelayMs: 100 });
    // Connection errors are reported as events; the commands themselves fail as tested below.
    client.on('error', () => {});
    await whenReady(client);
  });

  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  /** How a command ends: its reply, or its error's message. */
  const outcome = (command: Promise<unknown>) =>
    command.then(
      (reply) => ({ reply }),
      (error: Error) => ({ error: error.message }),
    );

  it('fails a command with a timeout while Redis is frozen, and works again once it thaws', async () => {
    expect(await client.ping()).toBe('PONG');
    server.pause();
    try {
      expect(await outcome(client.ping())).toEqual({ error: 'Command timed out' });
      expect(await outcome(client.set('k', 'v'))).toEqual({ error: 'Command timed out' });
    } finally {
      server.resume();
    }
    await vi.waitFor(async () => expect(await client.ping()).toBe('PONG'), { timeout: 5000, interval: 50 });
  });

  it('fails a command at once while Redis is down (no offline queue), and reconnects when it is back', async () => {
    await server.kill();
    await vi.waitFor(() => expect(client.status).not.toBe('ready'), { timeout: 5000, interval: 10 });
    const result = await outcome(client.ping());
    expect(result).toEqual({ error: expect.stringMatching(/enableOfflineQueue|Connection is closed/) });
    await server.restart();
    await vi.waitFor(async () => expect(await client.ping()).toBe('PONG'), { timeout: 5000, interval: 50 });
  });

  it('never re-sends a command that was in flight when the connection dropped', async () => {
    await client.set('resent', '0');
    server.pause();
    const pending = outcome(client.incr('resent'));
    await server.kill();
    expect(await pending).toEqual({ error: expect.any(String) });
    await server.restart();
    await vi.waitFor(async () => expect(await client.ping()).toBe('PONG'), { timeout: 5000, interval: 50 });
    // The restarted server has no data (no persistence): the key is absent, not 1.
    expect(await client.get('resent')).toBeNull();
    await client.set('resent', '0');
    server.pause();
    const timedOut = outcome(client.incr('resent'));
    expect(await timedOut).toEqual({ error: 'Command timed out' });
    server.resume();
    // The frozen server runs the INCR it had read once it thaws; the client does not send it again.
    await vi.waitFor(async () => expect(await client.get('resent')).toBe('1'), {
      timeout: 5000,
      interval: 50,
    });
    await client.ping();
    expect(await client.get('resent')).toBe('1');
  });

  it('makes the counter store fail fast with RedisUnavailableError, then serve again', async () => {
    await whenReady(client);
    const store = new RedisCounterStore(client, { keyPrefix: 'vigil-test:' });
    await store.ready();
    const count = counterSpec('count');
    try {
      expect(await store.apply(1_800_000_000_000, [addOperation(count, 'k')])).toEqual([1]);
      server.pause();
      let failure: unknown;
      try {
        await store.apply(1_800_000_000_000, [addOperation(count, 'k')]);
      } catch (error) {
        failure = error;
      } finally {
        server.resume();
      }
      expect(failure).toBeInstanceOf(RedisUnavailableError);
      expect((failure as Error).message).toBe('Redis counter store: Command timed out');
      await server.kill();
      await expect(store.apply(1_800_000_000_000, [addOperation(count, 'k')])).rejects.toBeInstanceOf(
        RedisUnavailableError,
      );
      await server.restart();
      await vi.waitFor(
        async () => expect(await store.apply(1_800_000_000_000, [addOperation(count, 'k')])).toEqual([1]),
        { timeout: 5000, interval: 50 },
      );
    } finally {
      store.close();
    }
  });
});

describe('a counter store started while Redis is down', () => {
  it('refuses to count until it has loaded the drop registry, then serves', async () => {
    const port = await freePort();
    const client = createRedisClient(`redis://127.0.0.1:${port}`, { maxReconnectDelayMs: 50 });
    client.on('error', () => {});
    const store = new RedisCounterStore(client, { keyPrefix: 'vigil-test:', refreshMs: 50 });
    let server: RedisProcess | undefined;
    try {
      await expect(store.ready()).rejects.toBeInstanceOf(RedisUnavailableError);
      const count = counterSpec('count');
      await expect(store.apply(1_800_000_000_000, [addOperation(count, 'k')])).rejects.toThrow(
        /drop registry not loaded/,
      );
      server = await RedisProcess.startOn(port);
      await vi.waitFor(
        async () => expect(await store.apply(1_800_000_000_000, [addOperation(count, 'k')])).toEqual([1]),
        { timeout: 5000, interval: 50 },
      );
    } finally {
      store.close();
      client.disconnect();
      await server?.stop();
    }
  });

  it('is a plain ioredis client for a single server', () => {
    const client = createRedisClient('redis://127.0.0.1:1', { connectionName: 'x' });
    client.on('error', () => {});
    expect(client).toBeInstanceOf(Redis);
    expect((client as Redis).options.enableOfflineQueue).toBe(false);
    expect((client as LagTolerantRedis).commandTimeoutMs).toBe(50);
    expect((client as Redis).options.autoResendUnfulfilledCommands).toBe(false);
    client.disconnect();
  });
});
