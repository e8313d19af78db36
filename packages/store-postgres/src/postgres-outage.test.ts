import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sampleAudit, sampleRecord, sampleTenant } from '@vigil/engine/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createPool, type PostgresSettings } from './pg-pool.js';
import { PostgresConfigStore } from './postgres-config-store.js';
import { PostgresDecisionLog } from './postgres-decision-log.js';
import { PostgresProcess } from './test-support/postgres-process.js';

/** A PostgreSQL of this file's own, which the tests stop, freeze and start again. */
let server: PostgresProcess;
beforeAll(async () => {
  server = await PostgresProcess.start();
}, 60_000);
afterAll(async () => {
  await server?.destroy();
});

function settings(): PostgresSettings {
  return { url: server.url, connectionTimeoutMs: 500, queryTimeoutMs: 1_000, statementTimeoutMs: 800 };
}

async function countRows(): Promise<{ n: number; distinct: number }> {
  const pool = createPool(settings());
  try {
    const { rows } = await pool.query(
      'SELECT count(*)::int AS n, count(DISTINCT decision_id)::int AS distinct FROM decisions',
    );
    return rows[0];
  } finally {
    await pool.end();
  }
}

async function appendTurn(log: PostgresDecisionLog, count: number) {
  const records = Array.from({ length: count }, () => sampleRecord());
  await Promise.all(records.map((record) => log.append(record)));
  return records;
}

describe('PostgreSQL down and back', () => {
  it('keeps answering appends while PostgreSQL is stopped or frozen, then delivers each record once', async () => {
    const errors: Error[] = [];
    const log = PostgresDecisionLog.open(
      { ...settings(), onError: (error) => errors.push(error) },
      { journalPath: join(mkdtempSync(join(tmpdir(), 'vigil-outage-')), 'decisions.journal') },
    );
    await appendTurn(log, 50);
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 10_000, interval: 20 });

    // Stopped: connections are refused, and queries fail at once with the driver's error.
    await server.stop();
    const probe = createPool(settings());
    probe.on('error', () => undefined);
    await expect(probe.query('SELECT 1')).rejects.toThrow(/ECONNREFUSED|connect/);
    const whileStopped = [...(await appendTurn(log, 30)), ...(await appendTurn(log, 20))];
    await vi.waitFor(() => expect(log.storeError()).toBeDefined(), { timeout: 10_000, interval: 20 });
    expect(log.spooled()).toBe(50);
    for (const record of whileStopped) expect(await log.get('tenant-a', record.decisionId)).toEqual(record);
    await server.resume();
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 20_000, interval: 50 });
    expect(await countRows()).toEqual({ n: 100, distinct: 100 });

    // Frozen (SIGSTOP): the server accepts nothing and answers nothing; the query timeout ends the wait.
    server.freeze();
    await expect(probe.query('SELECT 1')).rejects.toThrow(/timeout/i);
    const whileFrozen = await appendTurn(log, 40);
    await vi.waitFor(() => expect(log.storeError() ?? '').toMatch(/timeout/i), {
      timeout: 10_000,
      interval: 20,
    });
    expect(log.spooled()).toBe(40);
    server.thaw();
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 20_000, interval: 50 });
    await log.close();
    await probe.end();
    expect(await countRows()).toEqual({ n: 140, distinct: 140 });
    expect(whileFrozen).toHaveLength(40);
    expect(errors.length).toBeGreaterThan(0);
  }, 90_000);

  it('keeps watching configuration across a restart of PostgreSQL', async () => {
    const store = await PostgresConfigStore.open(settings());
    const seen: number[] = [];
    const watch = await store.watch((version) => seen.push(version), {
      checkIntervalMs: 600_000,
      onError: () => undefined,
    });
    const start = await store.currentVersion();
    await server.stop();
    await expect(store.load()).rejects.toThrow();
    await server.resume();
    // Once the watcher has listened again, a change is announced to it.
    await vi.waitFor(
      async () => {
        await store.putTenant(sampleTenant(`t-${Date.now()}`), sampleAudit('tenant.create', null));
        expect(seen.length).toBeGreaterThan(0);
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(seen[0]).toBeGreaterThan(start);
    await watch.close();
    await store.close();
  }, 60_000);
});

describe('PostgresProcess (the test server)', () => {
  it('rejects a server that cannot start, and shuts down one that is frozen', async () => {
    await expect(PostgresProcess.start({ settings: ['no_such_setting=1'] })).rejects.toThrow(/exited/);
    const frozen = await PostgresProcess.start();
    frozen.freeze();
    await frozen.destroy();
    expect(frozen.pid).toBeUndefined();
  }, 60_000);
});
