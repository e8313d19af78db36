import type {
  ApiKeyRecord,
  AuditEntry,
  ConfigSnapshot,
  ConfigStore,
  EventTypeRecord,
  FeatureRecord,
  PolicyState,
  PolicyVersionRecord,
  TenantRecord,
} from '@vigil/engine';
import { VigilError } from '@vigil/protocol';
import pg from 'pg';
import { migrate } from './migrations.js';
import { clientConfig, createPool, inTransaction, type PostgresSettings, sqlState } from './pg-pool.js';

/** The channel every committed configuration change is announced on, with the new version. */
export const configChannel = 'vigil_config';

export interface ConfigWatchOptions {
  /** Period of the backstop version check, for notifications lost while disconnected (default 5 000 ms). */
  checkIntervalMs?: number;
  /** Told about failures of the LISTEN connection and of version checks; the watch keeps trying. */
  onError?: (error: Error) => void;
}

/** A running watch; `close` stops it. */
export interface ConfigWatch {
  close(): Promise<void>;
}

/** First and longest wait before the LISTEN connection is opened again. */
const reconnectDelayMs = { first: 100, longest: 5_000 };

/**
 * Configuration and its audit trail in PostgreSQL. Every change commits in one transaction with
 * its audit entry and a bump of the configuration version, and announces the new version with
 * `NOTIFY vigil_config` (delivered when the transaction commits). Nodes `watch` for changes and
 * reload; a periodic version check covers notifications lost while a node was disconnected.
 */
export class PostgresConfigStore implements ConfigStore {
  readonly #pool: pg.Pool;
  readonly #settings: PostgresSettings;
  readonly #ownsPool: boolean;

  /**
   * Over a pool on which `migrate` has run. `settings` open the dedicated LISTEN connection of
   * `watch`. With `ownsPool`, `close` ends the pool; otherwise the caller, who may share it, does.
   */
  constructor(options: { pool: pg.Pool; settings: PostgresSettings; ownsPool?: boolean }) {
    this.#pool = options.pool;
    this.#settings = options.settings;
    this.#ownsPool = options.ownsPool ?? false;
  }

  /** A store with its own pool, after applying the migrations the database lacks. */
  static async open(settings: PostgresSettings): Promise<PostgresConfigStore> {
    const pool = createPool(settings);
    try {
      await migrate(pool);
    } catch (error) {
      await pool.end();
      throw error;
    }
    return new PostgresConfigStore({ pool, settings, ownsPool: true });
  }

  async load(): Promise<ConfigSnapshot> {
    return (await this.loadWithVersion()).snapshot;
  }

  /** The configuration and the version it is at, read in one consistent snapshot. */
  async loadWithVersion(): Promise<{ snapshot: ConfigSnapshot; version: number }> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no listener of the pool's: its connection dying between two
    // queries would otherwise be an uncaught 'error' event that ends the process.
    const onClientError = (error: Error) => {
      broken ??= error;
    };
    client.on('error', onClientError);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const bodies = async <T>(sql: string) =>
        (await client.query<{ body: string }>(sql)).rows.map((row) => JSON.parse(row.body) as T);
      const version = await client.query<{ version: string }>('SELECT version FROM config_version');
      const snapshot: ConfigSnapshot = {
        tenants: await bodies<TenantRecord>('SELECT body FROM tenants ORDER BY id'),
        keys: await bodies<ApiKeyRecord>('SELECT body FROM api_keys ORDER BY id'),
        eventTypes: await bodies<EventTypeRecord>('SELECT body FROM event_types ORDER BY tenant_id, name'),
        policyVersions: await bodies<PolicyVersionRecord>(
          'SELECT body FROM policy_versions ORDER BY tenant_id, event_type, version',
        ),
        policyStates: await bodies<PolicyState>(
          'SELECT body FROM policy_states ORDER BY tenant_id, event_type',
        ),
        features: await bodies<FeatureRecord>('SELECT body FROM features ORDER BY tenant_id, name'),
      };
      await client.query('COMMIT');
      return { snapshot, version: Number(version.rows[0]?.version ?? 0) };
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError as Error;
      });
      throw error;
    } finally {
      client.off('error', onClientError);
      client.release(broken);
    }
  }

  /** The configuration version: it grows by one with every committed change. */
  async currentVersion(): Promise<number> {
    const { rows } = await this.#pool.query<{ version: string }>('SELECT version FROM config_version');
    return Number(rows[0]?.version ?? 0);
  }

  async putTenant(tenant: TenantRecord, audit: AuditEntry): Promise<void> {
    await this.#change(audit, (client) =>
      client.query(
        'INSERT INTO tenants (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body',
        [tenant.id, JSON.stringify(tenant)],
      ),
    );
  }

  async deleteTenant(tenantId: string, audit: AuditEntry): Promise<void> {
    await this.#change(audit, async (client) => {
      await client.query('DELETE FROM tenants WHERE id = $1', [tenantId]);
      for (const table of ['api_keys', 'event_types', 'policy_versions', 'policy_states', 'features']) {
        await client.query(`DELETE FROM ${table} WHERE tenant_id = $1`, [tenantId]);
      }
    });
  }

  async putKey(key: ApiKeyRecord, audit: AuditEntry): Promise<void> {
    await this.#change(audit, (client) =>
      client.query(
        `INSERT INTO api_keys (id, tenant_id, body) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body`,
        [key.id, key.tenantId, JSON.stringify(key)],
      ),
    );
  }

  async putEventType(eventType: EventTypeRecord, audit: AuditEntry): Promise<void> {
    await this.#change(audit, (client) =>
      client.query(
        `INSERT INTO event_types (tenant_id, name, body) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, name) DO UPDATE SET body = excluded.body`,
        [eventType.tenantId, eventType.name, JSON.stringify(eventType)],
      ),
    );
  }

  /**
   * A version is written once. Two nodes saving the same next version number at once is the one
   * race here: the second gets `conflict` (409) and nothing of it is stored, audit included.
   */
  async putPolicyVersion(version: PolicyVersionRecord, audit: AuditEntry): Promise<void> {
    try {
      await this.#change(audit, (client) =>
        client.query(
          'INSERT INTO policy_versions (tenant_id, event_type, version, body) VALUES ($1, $2, $3, $4)',
          [version.tenantId, version.eventType, version.version, JSON.stringify(version)],
        ),
      );
    } catch (error) {
      if (sqlState(error) === '23505') {
        throw new VigilError('conflict', {
          message: `Version ${version.version} of the '${version.eventType}' policy was saved concurrently; retry.`,
          cause: error,
        });
      }
      throw error;
    }
  }

  async putPolicyState(state: PolicyState, audit: AuditEntry): Promise<void> {
    await this.#change(audit, (client) =>
      client.query(
        `INSERT INTO policy_states (tenant_id, event_type, body) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, event_type) DO UPDATE SET body = excluded.body`,
        [state.tenantId, state.eventType, JSON.stringify(state)],
      ),
    );
  }

  async putFeature(feature: FeatureRecord, audit: AuditEntry): Promise<void> {
    await this.#change(audit, (client) =>
      client.query(
        `INSERT INTO features (tenant_id, name, body) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, name) DO UPDATE SET body = excluded.body`,
        [feature.tenantId, feature.name, JSON.stringify(feature)],
      ),
    );
  }

  async deleteFeature(tenantId: string, name: string, audit: AuditEntry): Promise<void> {
    await this.#change(audit, (client) =>
      client.query('DELETE FROM features WHERE tenant_id = $1 AND name = $2', [tenantId, name]),
    );
  }

  /** Audit only: the change itself lives in another store (lists), so the version does not move. */
  async appendAudit(audit: AuditEntry): Promise<void> {
    await inTransaction(this.#pool, (client) => insertAudit(client, audit));
  }

  async listAudit(query: { tenantId?: string; limit: number; before?: number }): Promise<AuditEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.tenantId !== undefined) {
      params.push(query.tenantId);
      where.push(`tenant_id = $${params.length}`);
    }
    if (query.before !== undefined) {
      params.push(query.before);
      where.push(`id < $${params.length}`);
    }
    params.push(query.limit);
    const { rows } = await this.#pool.query<{
      id: string;
      at: string;
      actor: string;
      tenant_id: string | null;
      action: string;
      target: string;
      diff: string;
    }>(
      `SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map((row) => ({
      id: Number(row.id),
      at: row.at,
      actor: row.actor,
      tenantId: row.tenant_id,
      action: row.action,
      target: row.target,
      diff: JSON.parse(row.diff) as AuditEntry['diff'],
    }));
  }

  /**
   * Calls `onChange` with the new version after each committed change made by any node: at once
   * through `LISTEN vigil_config`, and at the latest after `checkIntervalMs` through a version
   * check (a notification sent while this node's LISTEN connection was down is lost). The LISTEN
   * connection is reopened with backoff when it fails; a reconnect checks the version at once.
   * Versions are reported in increasing order, each at most once.
   */
  async watch(onChange: (version: number) => void, options: ConfigWatchOptions = {}): Promise<ConfigWatch> {
    const report = (error: unknown) =>
      options.onError?.(error instanceof Error ? error : new Error(String(error)));
    let seen = await this.currentVersion();
    let closed = false;
    let listener: pg.Client | undefined;
    let reconnectTimer: NodeJS.Timeout | undefined;
    let delay = reconnectDelayMs.first;
    const offer = (version: number) => {
      if (closed || !Number.isSafeInteger(version) || version <= seen) return;
      seen = version;
      onChange(version);
    };
    const check = async () => {
      try {
        offer(await this.currentVersion());
      } catch (error) {
        report(error);
      }
    };
    const connect = async () => {
      reconnectTimer = undefined;
      if (closed) return;
      const client = new pg.Client(clientConfig(this.#settings));
      // Without a listener an error of this connection would crash the process.
      client.on('error', (error) => {
        report(error);
        retry(client);
      });
      client.on('end', () => retry(client));
      client.on('notification', (message) => {
        if (message.channel === configChannel) offer(Number(message.payload));
      });
      listener = client;
      try {
        await client.connect();
        await client.query(`LISTEN ${configChannel}`);
        delay = reconnectDelayMs.first;
        // Changes committed while the connection was down were announced to nobody here.
        await check();
      } catch (error) {
        report(error);
        retry(client);
      }
    };
    const retry = (client: pg.Client) => {
      if (closed || listener !== client) return;
      listener = undefined;
      client.end().catch(() => undefined);
      reconnectTimer = setTimeout(connect, delay);
      reconnectTimer.unref();
      delay = Math.min(delay * 2, reconnectDelayMs.longest);
    };
    const interval = setInterval(check, options.checkIntervalMs ?? 5_000);
    interval.unref();
    await connect();
    return {
      close: async () => {
        closed = true;
        clearInterval(interval);
        clearTimeout(reconnectTimer);
        const client = listener;
        listener = undefined;
        await client?.end().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    if (this.#ownsPool && !this.#pool.ended) await this.#pool.end();
  }

  /** Applies a change with its audit entry, bumps the version and announces it, in one transaction. */
  async #change(audit: AuditEntry, write: (client: pg.PoolClient) => Promise<unknown>): Promise<void> {
    await inTransaction(this.#pool, async (client) => {
      await write(client);
      await insertAudit(client, audit);
      const { rows } = await client.query<{ version: string }>(
        'UPDATE config_version SET version = version + 1 RETURNING version',
      );
      await client.query('SELECT pg_notify($1, $2)', [configChannel, rows[0]?.version ?? '0']);
    });
  }
}

async function insertAudit(client: pg.PoolClient, audit: AuditEntry): Promise<void> {
  await client.query(
    'INSERT INTO audit (at, actor, tenant_id, action, target, diff) VALUES ($1, $2, $3, $4, $5, $6)',
    [audit.at, audit.actor, audit.tenantId, audit.action, audit.target, JSON.stringify(audit.diff)],
  );
}
