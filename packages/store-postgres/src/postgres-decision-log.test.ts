import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decisionLogContract, sampleRecord } from '@vigil/engine/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createPool, type PostgresSettings } from './pg-pool.js';
import {
  findByEventIdsSql,
  PostgresDecisionLog,
  type PostgresDecisionLogOptions,
} from './postgres-decision-log.js';
import {
  createSchema,
  createTestDatabase,
  randomSchema,
  type TestDatabase,
} from './test-support/test-database.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

async function freshSettings(): Promise<PostgresSettings> {
  const schema = randomSchema();
  await createSchema(database.url, schema);
  return { url: database.url, schema };
}

function journalPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'vigil-pglog-')), 'decisions.journal');
}

type LogOptions = Omit<PostgresDecisionLogOptions, 'pool' | 'ownsPool' | 'journalPath'>;

/** A log on `settings` with a journal at `path`, and a query for counting what PostgreSQL has. */
function openLog(settings: PostgresSettings, path: string, options: LogOptions = {}) {
  return PostgresDecisionLog.open(settings, { journalPath: path, ...options });
}

async function countRows(settings: PostgresSettings): Promise<{ n: number; distinct: number }> {
  const pool = createPool(settings);
  try {
    const { rows } = await pool.query(
      'SELECT count(*)::int AS n, count(DISTINCT decision_id)::int AS distinct FROM decisions',
    );
    return rows[0];
  } finally {
    await pool.end();
  }
}

decisionLogContract('PostgresDecisionLog', async () => openLog(await freshSettings(), journalPath()));

describe('PostgresDecisionLog', () => {
  it('spools while PostgreSQL is refused, serves pending records, then delivers each once', async () => {
    const settings = await freshSettings();
    let down = true;
    const log = openLog(settings, journalPath(), {
      storeWriteGuard: (write) =>
        down ? Promise.reject(new Error('postgres unavailable (injected)')) : write(),
    });
    const records = Array.from({ length: 30 }, (_, index) =>
      sampleRecord({ event: { type: 'payment', id: `spool-${index}`, timestamp: 't', fields: {} } }),
    );
    for (const batch of [records.slice(0, 10), records.slice(10, 20), records.slice(20)]) {
      await Promise.all(batch.map((record) => log.append(record)));
    }
    await vi.waitFor(() => expect(log.storeError()).toContain('injected'), { timeout: 5_000, interval: 20 });
    expect(log.spooled()).toBe(30);
    for (const record of records) expect(await log.get(record.tenantId, record.decisionId)).toEqual(record);
    expect((await log.findByEventId('tenant-a', 'spool-7', 0, 'decision'))?.decisionId).toBe(
      records[7]?.decisionId,
    );
    down = false;
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 10_000, interval: 20 });
    expect((await log.search({ tenantId: 'tenant-a', limit: 100 })).records).toHaveLength(30);
    await log.close();
    expect(await countRows(settings)).toEqual({ n: 30, distinct: 30 });
  });

  it('replays the journal past its delivery mark on open, without doubling what PostgreSQL had', async () => {
    const settings = await freshSettings();
    const path = journalPath();
    const log = openLog(settings, path);
    const delivered = Array.from({ length: 20 }, () => sampleRecord());
    await Promise.all(delivered.map((record) => log.append(record)));
    await log.search({ tenantId: 'tenant-a', limit: 1 });
    // Records that never reached PostgreSQL before the process went away.
    let down = false;
    const second = openLog(settings, journalPath(), {
      storeWriteGuard: (write) => (down ? Promise.reject(new Error('down')) : write()),
    });
    await second.close();
    await log.close();
    // The mark is lost too, as if the process died between a commit and its mark: all is replayed.
    rmSync(`${path}.delivered`);
    const refusing = openLog(settings, path, { storeWriteGuard: () => Promise.reject(new Error('down')) });
    const spooled = Array.from({ length: 15 }, () => sampleRecord());
    await Promise.all(spooled.map((record) => refusing.append(record)));
    down = true;
    await refusing.close();
    expect(await countRows(settings)).toEqual({ n: 20, distinct: 20 });
    const reopened = openLog(settings, path);
    await vi.waitFor(() => expect(reopened.spooled()).toBe(0), { timeout: 10_000, interval: 20 });
    for (const record of [...delivered, ...spooled])
      expect(await reopened.get(record.tenantId, record.decisionId)).toEqual(record);
    await reopened.close();
    expect(await countRows(settings)).toEqual({ n: 35, distinct: 35 });
    expect(readFileSync(`${path}.delivered`, 'utf8')).toContain('offset');
  });

  it('keeps what was answered when the process is killed while PostgreSQL is unreachable', async () => {
    const settings = await freshSettings();
    const path = journalPath();
    const dist = new URL('../dist/index.js', import.meta.url).href;
    // Port 1 refuses connections: every delivery fails, and the records stay in the journal.
    const script = `
      const { PostgresDecisionLog } = await import(${JSON.stringify(dist)});
      const log = PostgresDecisionLog.open({ url: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMs: 200 },
        { journalPath: ${JSON.stringify(path)} });
      for (let turn = 0; turn < 4; turn++) {
        const appends = [];
        for (let i = 0; i < 50; i++) {
          const n = turn * 50 + i;
          appends.push(log.append({ decisionId: 'd' + n, tenantId: 't', kind: 'decision', createdAt: Date.now(),
            event: { type: 'x', id: 'e' + n, timestamp: 't', fields: {} }, verdict: 'accept', response: null,
            ruleIds: ['r'], entities: ['acct-' + (n % 2)] }));
        }
        await Promise.all(appends);
      }
      process.kill(process.pid, 'SIGKILL');
    `;
    const scriptFile = join(mkdtempSync(join(tmpdir(), 'vigil-pglog-')), 'append-and-die.mjs');
    writeFileSync(scriptFile, script);
    const child = spawnSync(process.execPath, [scriptFile]);
    expect(child.signal, child.stderr.toString()).toBe('SIGKILL');
    const log = openLog(settings, path);
    expect((await log.search({ tenantId: 't', limit: 1000 })).records).toHaveLength(200);
    expect((await log.search({ tenantId: 't', entity: 'acct-1', limit: 1000 })).records).toHaveLength(100);
    expect(await log.findByEventId('t', 'e199', 0, 'decision')).toMatchObject({ decisionId: 'd199' });
    await log.close();
    expect(await countRows(settings)).toEqual({ n: 200, distinct: 200 });
  });

  it('creates partitions ahead and on demand, and drops those past retention', async () => {
    const settings = await freshSettings();
    const day = 24 * 60 * 60 * 1000;
    const now = Date.UTC(2026, 10, 24, 12);
    const path = journalPath();
    const log = openLog(settings, path, { now: () => now });
    const old = sampleRecord({ createdAt: now - 10 * day });
    const recent = sampleRecord({ createdAt: now - day });
    await log.append(old);
    await log.append(recent);
    expect((await log.search({ tenantId: 'tenant-a', limit: 10 })).records).toHaveLength(2);
    await log.maintainPartitions();
    await log.close();
    const partitions = async () => {
      const pool = createPool(settings);
      const { rows } = await pool.query(
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
         WHERE n.nspname = current_schema() AND p.relname = 'decisions' ORDER BY 1`,
      );
      await pool.end();
      return rows.map((row) => row.name as string);
    };
    // Today and 2 days ahead exist from the start; the old days were made for their records.
    expect(await partitions()).toEqual([
      'decisions_20261114',
      'decisions_20261123',
      'decisions_20261124',
      'decisions_20261125',
      'decisions_20261126',
    ]);
    // A node with a 3-day retention drops what ended before then (at start, then daily).
    const retaining = openLog(settings, path, { now: () => now, retentionDays: 3 });
    await retaining.maintainPartitions();
    expect(await partitions()).toEqual([
      'decisions_20261123',
      'decisions_20261124',
      'decisions_20261125',
      'decisions_20261126',
    ]);
    expect(await retaining.get('tenant-a', old.decisionId)).toBeUndefined();
    expect(await retaining.get('tenant-a', recent.decisionId)).toEqual(recent);
    await retaining.close();
  });

  it('stores and finds values PostgreSQL text cannot hold (NUL, lone surrogates)', async () => {
    const log = openLog(await freshSettings(), journalPath());
    const odd = ['nul\u0000value', 'lone\ud800surrogate'];
    const record = sampleRecord({
      entities: odd,
      ruleIds: ['rule\u0000x'],
      event: { type: 'payment', id: 'evt\u0000odd', timestamp: 't', fields: { note: 'a\u0000b\udfff' } },
    });
    await log.append(record);
    for (const entity of odd) {
      const page = await log.search({ tenantId: 'tenant-a', entity, limit: 10 });
      expect(page.records).toEqual([record]);
    }
    expect((await log.search({ tenantId: 'tenant-a', rule: 'rule\u0000x', limit: 10 })).records).toEqual([
      record,
    ]);
    expect(await log.findByEventId('tenant-a', 'evt\u0000odd', 0, 'decision')).toEqual(record);
    expect(await log.get('tenant-a', record.decisionId)).toEqual(record);
    await log.close();
  });

  it('sends the idempotency lookups of one turn as one query, each answered as it would be alone', async () => {
    const settings = await freshSettings();
    const pool = createPool(settings);
    const log = new PostgresDecisionLog({ pool, journalPath: journalPath() });
    const decision = sampleRecord({ event: { type: 'payment', id: 'seen-1', timestamp: 't', fields: {} } });
    const event = sampleRecord({
      kind: 'event',
      event: { type: 'payment', id: 'seen-2', timestamp: 't', fields: {} },
    });
    const other = sampleRecord({
      tenantId: 'tenant-b',
      event: { type: 'payment', id: 'seen-1', timestamp: 't', fields: {} },
    });
    for (const record of [decision, event, other]) await log.append(record);
    // Delivered, so the lookups below are answered by PostgreSQL and not from the pending records.
    await log.search({ tenantId: 'tenant-a', limit: 1 });
    const query = vi.spyOn(pool, 'query');
    const found = await Promise.all([
      log.findByEventId('tenant-a', 'seen-1', 0, 'decision'),
      log.findByEventId('tenant-a', 'seen-2', 0, 'decision'),
      log.findByEventId('tenant-a', 'seen-2', 0, 'event'),
      log.findByEventId('tenant-b', 'seen-1', 0, 'decision'),
      log.findByEventId('tenant-a', 'never', 0, 'decision'),
      log.findByEventId('tenant-a', 'seen-1', decision.createdAt + 1, 'decision'),
    ]);
    expect(found).toEqual([decision, undefined, event, other, undefined, undefined]);
    expect(query).toHaveBeenCalledTimes(1);
    // A failed query answers every lookup of its turn "not found" (the decision goes ahead).
    query.mockRejectedValueOnce(new Error('lookup failed (injected)'));
    expect(
      await Promise.all([
        log.findByEventId('tenant-a', 'seen-1', 0, 'decision'),
        log.findByEventId('tenant-b', 'seen-1', 0, 'decision'),
      ]),
    ).toEqual([undefined, undefined]);
    query.mockRestore();
    await log.close();
    await pool.end();
  });

  it('sends the records of many turns in one INSERT after the delivery delay, or at once for a read', async () => {
    const settings = await freshSettings();
    const pool = createPool(settings);
    // A delay far longer than the test: nothing is delivered by the timer here.
    const log = new PostgresDecisionLog({ pool, journalPath: journalPath(), deliveryDelayMs: 60_000 });
    await log.maintainPartitions();
    const query = vi.spyOn(pool, 'query');
    const records = Array.from({ length: 3 }, (_, index) =>
      sampleRecord({ event: { type: 'payment', id: `gathered-${index}`, timestamp: 't', fields: {} } }),
    );
    // One turn each: three journal writes, queued for PostgreSQL together.
    for (const record of records) await log.append(record);
    expect(log.spooled()).toBe(3);
    expect(await log.get('tenant-a', records[1]?.decisionId as string)).toEqual(records[1]);
    const inserts = () =>
      query.mock.calls.filter(([config]) => (config as { name?: string }).name === 'vigil_insert_decisions');
    // Shadow results wait for their decision's delivery without hurrying it.
    const shadow = { version: 2, verdict: 'review' as const, score: 10, rules: ['r1'], errors: [] };
    const first = records[0] as (typeof records)[number];
    const shadowsRecorded = log.recordShadows('tenant-a', first.decisionId, [shadow]);
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(inserts()).toHaveLength(0);
    expect(log.spooled()).toBe(3);
    // A search sends what waits, without waiting for the delay.
    expect((await log.search({ tenantId: 'tenant-a', limit: 10 })).records).toHaveLength(3);
    expect(inserts()).toHaveLength(1);
    expect(log.spooled()).toBe(0);
    await shadowsRecorded;
    expect((await log.get('tenant-a', first.decisionId))?.shadows).toEqual([shadow]);
    query.mockRestore();
    await log.close();
    await pool.end();
    expect(await countRows(settings)).toEqual({ n: 3, distinct: 3 });
  });

  it('delivers after the delivery delay without a read, and close delivers what waits', async () => {
    const settings = await freshSettings();
    const path = journalPath();
    const log = openLog(settings, path, { deliveryDelayMs: 20 });
    await log.append(sampleRecord({ event: { type: 'payment', id: 'timed-1', timestamp: 't', fields: {} } }));
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 5_000, interval: 10 });
    await log.close();
    const waiting = openLog(settings, path, { deliveryDelayMs: 60_000 });
    await waiting.append(
      sampleRecord({ event: { type: 'payment', id: 'timed-2', timestamp: 't', fields: {} } }),
    );
    await waiting.close();
    expect(await countRows(settings)).toEqual({ n: 2, distinct: 2 });
  });

  it('plans the idempotency lookups on the event index even while the tables are empty', async () => {
    // The lookup is a named statement, whose generic plan is often made on a connection's first
    // lookups, while today's partition is still empty. That plan must find the rows by event id
    // (decisions_by_event), not walk the tenant's day in time order (decisions_by_time) filtering
    // on it, which reads the whole day per lookup once the day fills up.
    const settings = await freshSettings();
    const pool = createPool(settings);
    const log = new PostgresDecisionLog({ pool, journalPath: journalPath() });
    await log.maintainPartitions();
    const client = await pool.connect();
    try {
      await client.query('SET plan_cache_mode = force_generic_plan');
      await client.query(`PREPARE lookups (text[], text[], text[], bigint[]) AS ${findByEventIdsSql}`);
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        "EXPLAIN EXECUTE lookups (ARRAY['tenant-a'], ARRAY['evt-1'], ARRAY['decision'], ARRAY[0]::bigint[])",
      );
      const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
      const scans = plan.split('\n').filter((line) => /Scan.* on decisions_\d{8}/.test(line));
      expect(scans).toHaveLength(3);
      for (const scan of scans) expect(scan).toMatch(/Index Scan using \S*_event_id_kind_created_at_idx/);
    } finally {
      client.release();
      await log.close();
      await pool.end();
    }
  });

  it('refuses a cursor it did not make', async () => {
    const log = openLog(await freshSettings(), journalPath());
    await expect(log.search({ tenantId: 't', limit: 5, cursor: 'bogus' })).rejects.toMatchObject({
      code: 'invalid_request',
    });
    await log.close();
  });
});
