import { Cluster, type ClusterOptions, type Command, Redis, type RedisOptions } from 'ioredis';

/** Either kind of ioredis client; both take the same commands. */
export type RedisClient = Redis | Cluster;

/** Client settings; every one has a default fit for the decision path (docs/SCALE-OUT.md). */
export interface RedisClientOptions {
  /** A command without a reply by then fails with "Command timed out", ms (default 50). */
  commandTimeoutMs?: number;
  /** A TCP connect (and TLS handshake) that takes longer fails, ms (default 500). */
  connectTimeoutMs?: number;
  /** Longest wait between two reconnect attempts, ms (default 1,000); attempts go on forever. */
  maxReconnectDelayMs?: number;
  /** Name shown by `CLIENT LIST`, for operators (default `vigil`). */
  connectionName?: string;
}

/** Where and how to connect, parsed from a `VIGIL_REDIS_URL`. */
export interface RedisTarget {
  readonly cluster: boolean;
  readonly tls: boolean;
  /** One or more seed nodes; a single server has exactly one. */
  readonly nodes: readonly { host: string; port: number }[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** Database number (single server only). */
  readonly db: number;
}

const schemes: Record<string, { cluster: boolean; tls: boolean }> = {
  'redis:': { cluster: false, tls: false },
  'rediss:': { cluster: false, tls: true },
  'redis+cluster:': { cluster: true, tls: false },
  'rediss+cluster:': { cluster: true, tls: true },
};

/**
 * Parses `redis://[user:password@]host[:port][/db]`, `rediss://...` (TLS), and for Redis Cluster
 * `redis+cluster://[user:password@]host:port,host:port,...` (or `rediss+cluster://`): any
 * reachable subset of the masters, the client discovers the rest. Throws with a clear message on
 * anything else; the message never contains the password.
 */
export function parseRedisUrl(text: string): RedisTarget {
  const colon = text.indexOf('://');
  const scheme = colon < 0 ? '' : `${text.slice(0, colon).toLowerCase()}:`;
  const kind = schemes[scheme];
  if (kind === undefined)
    throw new Error(
      'VIGIL_REDIS_URL must start with redis://, rediss://, redis+cluster:// or rediss+cluster://',
    );
  let rest = text.slice(colon + 3);
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const credentials = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const separator = credentials.indexOf(':');
    const user = decodeURIComponent(separator < 0 ? credentials : credentials.slice(0, separator));
    username = user === '' ? undefined : user;
    password = separator < 0 ? undefined : decodeURIComponent(credentials.slice(separator + 1));
  }
  const slash = rest.indexOf('/');
  const hosts = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1).split('?')[0];
  let db = 0;
  if (path !== undefined && path !== '') {
    if (kind.cluster) throw new Error('VIGIL_REDIS_URL: Redis Cluster has no database number');
    if (!/^\d{1,2}$/.test(path)) throw new Error('VIGIL_REDIS_URL: the database must be a number 0..99');
    db = Number(path);
  }
  const nodes = hosts.split(',').map((hostPort) => parseHostPort(hostPort));
  if (!kind.cluster && nodes.length !== 1)
    throw new Error('VIGIL_REDIS_URL: several hosts need the redis+cluster:// scheme');
  return { cluster: kind.cluster, tls: kind.tls, nodes, username, password, db };
}

function parseHostPort(text: string): { host: string; port: number } {
  // An IPv6 address is written in brackets: [::1]:6379.
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(text);
  const port = match?.[2] === undefined ? 6379 : Number(match[2]);
  if (match === null || port < 1 || port > 65_535)
    throw new Error(`VIGIL_REDIS_URL: '${text}' is not host[:port]`);
  const host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

/**
 * Settings that make a client fail fast instead of waiting: ioredis by default queues commands
 * while disconnected and retries them for ever, so a decision would hang on a dead Redis. Here a
 * command fails after `commandTimeoutMs`, fails at once while disconnected (no offline queue),
 * is never re-sent after a reconnect (a re-sent counter update would count twice), and the client
 * keeps reconnecting in the background with a bounded backoff.
 */
export function redisOptions(target: RedisTarget, options: RedisClientOptions = {}): RedisOptions {
  const maxDelay = options.maxReconnectDelayMs ?? 1000;
  return {
    username: target.username,
    password: target.password,
    db: target.db,
    ...(target.tls ? { tls: {} } : {}),
    connectionName: options.connectionName ?? 'vigil',
    commandTimeout: options.commandTimeoutMs ?? 50,
    connectTimeout: options.connectTimeoutMs ?? 500,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay),
    // A Redis that answers but is still loading its data set counts as down, not as ready.
    enableReadyCheck: true,
    keepAlive: 10_000,
    // Commands issued in one tick (the counter script, idempotency claims and answers of the
    // decisions of one event-loop turn) go out in one write.
    enableAutoPipelining: true,
  };
}

/**
 * A single-server client whose command timeout an overloaded process does not fire falsely.
 *
 * ioredis fails a command from a timer. When the event loop is busy past the timeout (a node at
 * full load runs turns of tens of milliseconds), the timer phase of the next turn runs before the
 * poll phase that would read the reply already waiting in the socket, and a command Redis answered
 * in time fails as "timed out". Here the timer only schedules the check with `setImmediate`, which
 * runs after that poll phase: a reply that arrived in time is read first, and a Redis that did not
 * answer still fails the command at most one turn later.
 */
export class LagTolerantRedis extends Redis {
  readonly #commandTimeoutMs: number;

  constructor(options: RedisOptions) {
    const { commandTimeout, ...rest } = options;
    super(rest);
    this.#commandTimeoutMs = commandTimeout ?? 0;
  }

  /** The command timeout, ms (0: none); ioredis's own `options.commandTimeout` stays unset. */
  get commandTimeoutMs(): number {
    return this.#commandTimeoutMs;
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    if (this.#commandTimeoutMs > 0 && !command.isResolved) {
      const timer = setTimeout(() => {
        setImmediate(() => {
          if (!command.isResolved) command.reject(new Error('Command timed out'));
        });
      }, this.#commandTimeoutMs);
      command.promise.then(
        () => clearTimeout(timer),
        () => clearTimeout(timer),
      );
    }
    return super.sendCommand(command, stream);
  }
}

/** Creates a client from a `VIGIL_REDIS_URL`; it connects in the background (see {@link whenReady}). */
export function createRedisClient(url: string, options: RedisClientOptions = {}): RedisClient {
  const target = parseRedisUrl(url);
  const nodeOptions = redisOptions(target, options);
  if (!target.cluster) {
    const node = target.nodes[0] as { host: string; port: number };
    return new LagTolerantRedis({ ...nodeOptions, host: node.host, port: node.port });
  }
  const maxDelay = options.maxReconnectDelayMs ?? 1000;
  const { db: _db, ...clusterNodeOptions } = nodeOptions;
  const clusterOptions: ClusterOptions = {
    redisOptions: clusterNodeOptions,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    // Commands of one tick are sent per node in one write: the scripts of one decision, which
    // go to several nodes, cost one round trip.
    enableAutoPipelining: true,
    scaleReads: 'master',
    maxRedirections: 4,
    retryDelayOnFailover: 20,
    retryDelayOnClusterDown: 20,
    retryDelayOnTryAgain: 20,
    slotsRefreshTimeout: options.connectTimeoutMs ?? 500,
    clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay),
  };
  return new Cluster(
    target.nodes.map((node) => ({ host: node.host, port: node.port })),
    clusterOptions,
  );
}

/** Resolves once the client is ready, or rejects after `timeoutMs` (the client keeps trying). */
export function whenReady(client: RedisClient, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis is not ready after ${timeoutMs} ms (status ${client.status})`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}
