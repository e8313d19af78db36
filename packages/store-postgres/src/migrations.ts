import type pg from 'pg';
import { inTransaction } from './pg-pool.js';

/** One versioned schema change. Applied once, in order; never edited once released. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Vigil's schema, in order. `created_at` columns of the decision log are epoch milliseconds (as
 * in the `DecisionLog` port); its tables are partitioned by UTC day on them, and the partitions
 * are created by `PostgresDecisionLog` (ahead of time and on demand), not here.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'configuration and audit',
    sql: `
CREATE TABLE config_version (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version bigint NOT NULL
);
INSERT INTO config_version (singleton, version) VALUES (true, 0);
CREATE TABLE tenants (id text PRIMARY KEY, body text NOT NULL);
CREATE TABLE api_keys (id text PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
CREATE TABLE event_types (
  tenant_id text NOT NULL, name text NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, name)
);
CREATE TABLE policy_versions (
  tenant_id text NOT NULL, event_type text NOT NULL, version integer NOT NULL, body text NOT NULL,
  PRIMARY KEY (tenant_id, event_type, version)
);
CREATE TABLE policy_states (
  tenant_id text NOT NULL, event_type text NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, event_type)
);
CREATE TABLE features (
  tenant_id text NOT NULL, name text NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, name)
);
CREATE TABLE audit (
  id bigserial PRIMARY KEY, at text NOT NULL, actor text NOT NULL, tenant_id text,
  action text NOT NULL, target text NOT NULL, diff text NOT NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant_id, id);
`,
  },
  {
    version: 2,
    name: 'decision log',
    sql: `
CREATE SEQUENCE decision_seq;
CREATE TABLE decisions (
  decision_id text NOT NULL,
  created_at bigint NOT NULL,
  seq bigint NOT NULL DEFAULT nextval('decision_seq'),
  tenant_id text NOT NULL,
  kind text NOT NULL,
  event_id text NOT NULL,
  verdict text,
  rule_ids text[] NOT NULL,
  body text NOT NULL,
  PRIMARY KEY (decision_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX decisions_by_time ON decisions (tenant_id, created_at, seq);
CREATE INDEX decisions_by_event ON decisions (tenant_id, event_id, kind, created_at);
CREATE INDEX decisions_by_rule ON decisions USING gin (rule_ids);
CREATE TABLE decision_entities (
  tenant_id text NOT NULL,
  entity text NOT NULL,
  created_at bigint NOT NULL,
  seq bigint NOT NULL,
  decision_id text NOT NULL,
  PRIMARY KEY (tenant_id, entity, created_at, seq)
) PARTITION BY RANGE (created_at);
CREATE TABLE decision_shadows (
  id bigserial PRIMARY KEY, tenant_id text NOT NULL, decision_id text NOT NULL, body text NOT NULL
);
CREATE INDEX decision_shadows_by_decision ON decision_shadows (tenant_id, decision_id, id);
CREATE TABLE feedback (
  id bigserial PRIMARY KEY, tenant_id text NOT NULL, event_id text NOT NULL, label text NOT NULL,
  source text, note text, created_at bigint NOT NULL
);
CREATE INDEX feedback_by_event ON feedback (tenant_id, event_id, id);
`,
  },
];

/** Advisory lock class of Vigil's schema changes (any constant; the schema name completes the key). */
const lockClass = 0x5647_4c01;

/**
 * Applies the migrations this database lacks, in one transaction, under an advisory lock scoped
 * to the current schema: of several nodes starting at once, one applies them and the others wait,
 * then find them applied. Returns the versions applied by this call. A database with versions this
 * code does not know (a newer node ran first) is left as it is.
 */
export async function migrate(pool: pg.Pool, list: readonly Migration[] = migrations): Promise<number[]> {
  return inTransaction(pool, async (client) => {
    // Schema changes and waiting for another node's may take longer than an ordinary statement.
    await client.query("SET LOCAL statement_timeout = '120s'");
    const long = { query_timeout: 125_000 };
    await client.query({
      text: 'SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))',
      values: [lockClass],
      ...long,
    });
    await client.query(`CREATE TABLE IF NOT EXISTS vigil_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM vigil_migrations');
    const present = new Set(rows.map((row) => row.version));
    const applied: number[] = [];
    for (const migration of [...list].sort((a, b) => a.version - b.version)) {
      if (present.has(migration.version)) continue;
      await client.query({ text: migration.sql, ...long });
      await client.query('INSERT INTO vigil_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    return applied;
  });
}
