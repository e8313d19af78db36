import { configStoreContract, sampleAudit, sampleTenant } from '@vigil/engine/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { migrate, migrations } from './migrations.js';
import { createPool, type PostgresSettings } from './pg-pool.js';
import { PostgresConfigStore } from './postgres-config-store.js';
import {
  createSchema,
  createTestDatabase,
  randomSchema,
  type TestDatabase,
  withClient,
} from './test-support/test-database.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

/** Settings for a fresh, empty schema of this file's database. */
async function freshSettings(): Promise<PostgresSettings> {
  const schema = randomSchema();
  await createSchema(database.url, schema);
  return { url: database.url, schema };
}

configStoreContract('PostgresConfigStore', async () => {
  const settings = await freshSettings();
  return {
    store: await PostgresConfigStore.open(settings),
    reopen: () => PostgresConfigStore.open(settings),
  };
});

describe('migrations', () => {
  it('applies each version once when several nodes start at the same time', async () => {
    const settings = await freshSettings();
    const [first, second, third] = [createPool(settings), createPool(settings), createPool(settings)];
    const pools = [first, second, third];
    const results = await Promise.all(pools.map((pool) => migrate(pool)));
    // One migrator applied everything; the others waited on the lock and found it done.
    expect(results.flat().sort()).toEqual(migrations.map((migration) => migration.version));
    const { rows } = await first.query(
      'SELECT version, count(*)::int AS n FROM vigil_migrations GROUP BY version ORDER BY version',
    );
    expect(rows).toEqual(migrations.map((migration) => ({ version: migration.version, n: 1 })));
    expect(await migrate(second)).toEqual([]);
    await Promise.all(pools.map((pool) => pool.end()));
  });
});

describe('PostgresConfigStore across nodes', () => {
  it('refuses a concurrently saved policy version with `conflict`', async () => {
    const settings = await freshSettings();
    const [a, b] = [await PostgresConfigStore.open(settings), await PostgresConfigStore.open(settings)];
    const version = {
      tenantId: 't1',
      eventType: 'login',
      version: 1,
      policy: { rules: [] },
      createdAt: 'x',
      createdBy: 'admin',
    } as unknown as Parameters<PostgresConfigStore['putPolicyVersion']>[0];
    const outcomes = await Promise.allSettled([
      a.putPolicyVersion(version, sampleAudit('policy.version.create', 't1')),
      b.putPolicyVersion(version, sampleAudit('policy.version.create', 't1')),
    ]);
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.find((outcome) => outcome.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 'conflict', status: 409 });
    expect(await a.listAudit({ limit: 10 })).toHaveLength(1);
    await a.close();
    await b.close();
  });

  it("announces a change made on one node to another node's watcher, with the new version", async () => {
    const settings = await freshSettings();
    const writer = await PostgresConfigStore.open(settings);
    const reader = await PostgresConfigStore.open(settings);
    const seen: number[] = [];
    // A backstop far in the future: only the notification can deliver the change in time.
    const watch = await reader.watch((version) => seen.push(version), { checkIntervalMs: 600_000 });
    const before = await reader.currentVersion();
    await writer.putTenant(sampleTenant('t1'), sampleAudit('tenant.create', 't1'));
    await vi.waitFor(() => expect(seen).toEqual([before + 1]), { timeout: 5_000, interval: 10 });
    expect((await reader.loadWithVersion()).version).toBe(before + 1);
    await writer.putTenant(sampleTenant('t2'), sampleAudit('tenant.create', 't2'));
    await vi.waitFor(() => expect(seen).toEqual([before + 1, before + 2]), { timeout: 5_000, interval: 10 });
    await watch.close();
    await writer.close();
    await reader.close();
  });

  it('finds a change whose notification was lost by the periodic version check', async () => {
    const settings = await freshSettings();
    const store = await PostgresConfigStore.open(settings);
    const seen: number[] = [];
    const watch = await store.watch((version) => seen.push(version), { checkIntervalMs: 100 });
    // A version bump without NOTIFY, as if the notification had been lost.
    await withClient(database.url, (client) =>
      client.query(`UPDATE ${settings.schema}.config_version SET version = version + 1`),
    );
    await vi.waitFor(() => expect(seen).toEqual([1]), { timeout: 5_000, interval: 20 });
    await watch.close();
    await store.close();
  });

  it('reopens its LISTEN connection when it is killed, and reports changes made meanwhile', async () => {
    const settings = { ...(await freshSettings()), applicationName: `vigil-listen-${Date.now()}` };
    const store = await PostgresConfigStore.open(settings);
    const errors: Error[] = [];
    const seen: number[] = [];
    const watch = await store.watch((version) => seen.push(version), {
      checkIntervalMs: 600_000,
      onError: (error) => errors.push(error),
    });
    const terminated = await withClient(database.url, async (client) => {
      const { rows } = await client.query(
        `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
          WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
        [settings.applicationName],
      );
      return rows.length;
    });
    expect(terminated).toBe(1);
    await store.putTenant(sampleTenant('t1'), sampleAudit('tenant.create', 't1'));
    await vi.waitFor(() => expect(seen).toEqual([1]), { timeout: 10_000, interval: 20 });
    expect(errors.length).toBeGreaterThan(0);
    await store.putTenant(sampleTenant('t2'), sampleAudit('tenant.create', 't2'));
    await vi.waitFor(() => expect(seen).toEqual([1, 2]), { timeout: 10_000, interval: 20 });
    await watch.close();
    await store.close();
  });

  it('survives an error of an idle pooled connection, and the next query works', async () => {
    const settings = { ...(await freshSettings()), applicationName: `vigil-idle-${Date.now()}` };
    const errors: Error[] = [];
    const pool = createPool({ ...settings, onError: (error) => errors.push(error) });
    await pool.query('SELECT 1');
    await withClient(database.url, (client) =>
      client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
        settings.applicationName,
      ]),
    );
    await vi.waitFor(() => expect(errors).toHaveLength(1), { timeout: 5_000, interval: 20 });
    expect((await pool.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    await pool.end();
  });
});
