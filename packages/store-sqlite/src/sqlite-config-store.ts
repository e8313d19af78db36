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
import Database from 'better-sqlite3';

const schema = `
CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event_types (
  tenant_id TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS policy_versions (
  tenant_id TEXT NOT NULL, event_type TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (tenant_id, event_type, version)
);
CREATE TABLE IF NOT EXISTS features (
  tenant_id TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS policy_states (
  tenant_id TEXT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, event_type)
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, tenant_id TEXT,
  action TEXT NOT NULL, target TEXT NOT NULL, diff TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant_id, id);
`;

/** The embedded configuration store: one SQLite file, every change in one transaction with its audit entry. */
export class SqliteConfigStore implements ConfigStore {
  readonly #db: Database.Database;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(schema);
  }

  async load(): Promise<ConfigSnapshot> {
    const bodies = (sql: string) =>
      (this.#db.prepare(sql).all() as { body: string }[]).map((row) => JSON.parse(row.body) as unknown);
    return {
      tenants: bodies('SELECT body FROM tenants ORDER BY id') as TenantRecord[],
      keys: bodies('SELECT body FROM api_keys ORDER BY id') as ApiKeyRecord[],
      eventTypes: bodies('SELECT body FROM event_types ORDER BY tenant_id, name') as EventTypeRecord[],
      policyVersions: bodies(
        'SELECT body FROM policy_versions ORDER BY tenant_id, event_type, version',
      ) as PolicyVersionRecord[],
      policyStates: bodies('SELECT body FROM policy_states ORDER BY tenant_id, event_type') as PolicyState[],
      features: bodies('SELECT body FROM features ORDER BY tenant_id, name') as FeatureRecord[],
    };
  }

  async putTenant(tenant: TenantRecord, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      this.#db
        .prepare(
          'INSERT INTO tenants (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body',
        )
        .run(tenant.id, JSON.stringify(tenant));
    });
  }

  async deleteTenant(tenantId: string, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      this.#db.prepare('DELETE FROM tenants WHERE id = ?').run(tenantId);
      this.#db.prepare('DELETE FROM api_keys WHERE tenant_id = ?').run(tenantId);
      this.#db.prepare('DELETE FROM event_types WHERE tenant_id = ?').run(tenantId);
      this.#db.prepare('DELETE FROM policy_versions WHERE tenant_id = ?').run(tenantId);
      this.#db.prepare('DELETE FROM policy_states WHERE tenant_id = ?').run(tenantId);
      this.#db.prepare('DELETE FROM features WHERE tenant_id = ?').run(tenantId);
    });
  }

  async putKey(key: ApiKeyRecord, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      this.#db
        .prepare(
          `INSERT INTO api_keys (id, tenant_id, body) VALUES (?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET body = excluded.body`,
        )
        .run(key.id, key.tenantId, JSON.stringify(key));
    });
  }

  async putEventType(eventType: EventTypeRecord, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      this.#db
        .prepare(
          `INSERT INTO event_types (tenant_id, name, body) VALUES (?, ?, ?)
           ON CONFLICT (tenant_id, name) DO UPDATE SET body = excluded.body`,
        )
        .run(eventType.tenantId, eventType.name, JSON.stringify(eventType));
    });
  }

  async putPolicyVersion(version: PolicyVersionRecord, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      // A version is written once: a second write of the same number is a bug, and fails.
      this.#db
        .prepare('INSERT INTO policy_versions (tenant_id, event_type, version, body) VALUES (?, ?, ?, ?)')
        .run(version.tenantId, version.eventType, version.version, JSON.stringify(version));
    });
  }

  async putFeature(feature: FeatureRecord, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      this.#db
        .prepare(
          `INSERT INTO features (tenant_id, name, body) VALUES (?, ?, ?)
           ON CONFLICT (tenant_id, name) DO UPDATE SET body = excluded.body`,
        )
        .run(feature.tenantId, feature.name, JSON.stringify(feature));
    });
  }

  async deleteFeature(tenantId: string, name: string, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      this.#db.prepare('DELETE FROM features WHERE tenant_id = ? AND name = ?').run(tenantId, name);
    });
  }

  async putPolicyState(state: PolicyState, audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {
      this.#db
        .prepare(
          `INSERT INTO policy_states (tenant_id, event_type, body) VALUES (?, ?, ?)
           ON CONFLICT (tenant_id, event_type) DO UPDATE SET body = excluded.body`,
        )
        .run(state.tenantId, state.eventType, JSON.stringify(state));
    });
  }

  async listAudit(query: { tenantId?: string; limit: number; before?: number }): Promise<AuditEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.tenantId !== undefined) {
      where.push('tenant_id = ?');
      params.push(query.tenantId);
    }
    if (query.before !== undefined) {
      where.push('id < ?');
      params.push(query.before);
    }
    const sql = `SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    const rows = this.#db.prepare(sql).all(...params, query.limit) as {
      id: number;
      at: string;
      actor: string;
      tenant_id: string | null;
      action: string;
      target: string;
      diff: string;
    }[];
    return rows.map((row) => ({
      id: row.id,
      at: row.at,
      actor: row.actor,
      tenantId: row.tenant_id,
      action: row.action,
      target: row.target,
      diff: JSON.parse(row.diff) as AuditEntry['diff'],
    }));
  }

  async appendAudit(audit: AuditEntry): Promise<void> {
    this.#inTransaction(audit, () => {});
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  #inTransaction(audit: AuditEntry, write: () => void): void {
    this.#db.transaction(() => {
      write();
      this.#db
        .prepare('INSERT INTO audit (at, actor, tenant_id, action, target, diff) VALUES (?, ?, ?, ?, ?, ?)')
        .run(audit.at, audit.actor, audit.tenantId, audit.action, audit.target, JSON.stringify(audit.diff));
    })();
  }
}
