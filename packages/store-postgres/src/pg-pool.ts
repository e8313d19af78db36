import pg from 'pg';

/**
 * How Vigil talks to PostgreSQL. node-postgres waits forever by default (for a connection, for a
 * query, for a client left idle in a transaction); every limit here is finite.
 */
export interface PostgresSettings {
  /** `postgres://user:password@host:port/database` (`VIGIL_DATABASE_URL`). */
  url: string;
  /** Most connections this pool opens (default 10). */
  maxConnections?: number;
  /** Longest wait to open a connection, or for a free one from the pool (default 2 000 ms). */
  connectionTimeoutMs?: number;
  /** Server-side limit per statement, `statement_timeout` (default 5 000 ms). */
  statementTimeoutMs?: number;
  /**
   * Client-side limit per query, for a server that stopped answering (network partition, a
   * stopped process), where `statement_timeout` never fires (default 6 000 ms).
   */
  queryTimeoutMs?: number;
  /** Server-side limit for a session idle inside a transaction (default 10 000 ms). */
  idleInTransactionTimeoutMs?: number;
  /** Idle connections are closed after this long (default 30 000 ms). */
  idleTimeoutMs?: number;
  /** Schema for every table (`search_path`); default the server's (`public`). */
  schema?: string;
  /** Shown in `pg_stat_activity` (default `vigil`). */
  applicationName?: string;
  /** Told about errors of idle connections, which would otherwise crash the process. */
  onError?: (error: Error) => void;
}

export const postgresDefaults = {
  maxConnections: 10,
  connectionTimeoutMs: 2_000,
  statementTimeoutMs: 5_000,
  queryTimeoutMs: 6_000,
  idleInTransactionTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
} as const;

/** A schema name that needs no quoting, so it can be put in `search_path` safely. */
const schemaName = /^[a-z_][a-z0-9_]{0,62}$/;

/** The node-postgres client configuration for these settings (also for dedicated LISTEN clients). */
export function clientConfig(settings: PostgresSettings): pg.ClientConfig {
  const config: pg.ClientConfig = {
    connectionString: settings.url,
    connectionTimeoutMillis: settings.connectionTimeoutMs ?? postgresDefaults.connectionTimeoutMs,
    statement_timeout: settings.statementTimeoutMs ?? postgresDefaults.statementTimeoutMs,
    query_timeout: settings.queryTimeoutMs ?? postgresDefaults.queryTimeoutMs,
    idle_in_transaction_session_timeout:
      settings.idleInTransactionTimeoutMs ?? postgresDefaults.idleInTransactionTimeoutMs,
    application_name: settings.applicationName ?? 'vigil',
    keepAlive: true,
  };
  if (settings.schema !== undefined) {
    if (!schemaName.test(settings.schema))
      throw new Error(`PostgreSQL schema name '${settings.schema}' must match ${schemaName}`);
    config.options = `-c search_path=${settings.schema}`;
  }
  return config;
}

/**
 * A bounded pool with finite timeouts. An error of an idle connection (the server restarted, the
 * network dropped) goes to `onError` instead of crashing the process; the pool replaces the
 * connection on next use.
 */
export function createPool(settings: PostgresSettings): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(settings),
    max: settings.maxConnections ?? postgresDefaults.maxConnections,
    idleTimeoutMillis: settings.idleTimeoutMs ?? postgresDefaults.idleTimeoutMs,
  });
  pool.on('error', (error) => settings.onError?.(error));
  return pool;
}

/** Runs `work` in one transaction on one client; a client that failed is discarded, not reused. */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client has no listener of the pool's: its connection dying between two queries
  // would otherwise be an uncaught 'error' event that ends the process.
  const onClientError = (error: Error) => {
    broken ??= error;
  };
  client.on('error', onClientError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch((rollbackError: unknown) => {
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    });
    throw error;
  } finally {
    // A client that cannot even roll back (timed out, connection lost) is destroyed, not reused.
    client.off('error', onClientError);
    client.release(broken);
  }
}

/** SQLSTATE of a PostgreSQL error, when it is one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
