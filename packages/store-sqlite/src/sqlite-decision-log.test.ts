import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { decisionLogContract, sampleRecord } from '@vigil/engine/testing';
import { describe, expect, it } from 'vitest';
import { SqliteDecisionLog } from './sqlite-decision-log.js';

decisionLogContract('SqliteDecisionLog', async () => new SqliteDecisionLog({ path: ':memory:' }));

describe('SqliteDecisionLog on disk', () => {
  it('keeps records across a reopen, and close() flushes appends still queued', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    const log = new SqliteDecisionLog({ path });
    const records = Array.from({ length: 50 }, () => sampleRecord());
    const appended = records.map((record) => log.append(record));
    expect(log.queueDepth()).toBe(50);
    await log.close();
    await Promise.all(appended);
    const reopened = new SqliteDecisionLog({ path });
    for (const record of records)
      expect(await reopened.get(record.tenantId, record.decisionId)).toEqual(record);
    await reopened.close();
  });

  it('rebuilds the entity index after the process is killed before indexing', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    const script = `
      const { SqliteDecisionLog } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const log = new SqliteDecisionLog({ path: ${JSON.stringify(path)} });
      const appends = [];
      for (let i = 0; i < 200; i++) {
        appends.push(log.append({ decisionId: 'd' + i, tenantId: 't', kind: 'decision', createdAt: 1000 + i,
          event: { type: 'x', id: 'e' + i, timestamp: 't', fields: {} }, verdict: 'accept', response: null,
          ruleIds: [], entities: ['acct-' + (i % 2)] }));
      }
      await Promise.all(appends);
      process.kill(process.pid, 'SIGKILL');
    `;
    const scriptFile = join(dirname(path), 'append-and-die.mjs');
    writeFileSync(scriptFile, script);
    const child = spawnSync(process.execPath, [scriptFile]);
    expect(child.signal, child.stderr.toString()).toBe('SIGKILL');
    const log = new SqliteDecisionLog({ path });
    const page = await log.search({ tenantId: 't', entity: 'acct-1', limit: 1000 });
    expect(page.records).toHaveLength(100);
    await log.close();
  });

  it('starts the journal afresh once SQLite has it all, and loses nothing across reopen', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    const log = new SqliteDecisionLog({ path, journalRotationBytes: 1 });
    const records = Array.from({ length: 60 }, () => sampleRecord());
    for (const batch of [records.slice(0, 20), records.slice(20, 40), records.slice(40)]) {
      await Promise.all(batch.map((record) => log.append(record)));
      await log.search({ tenantId: 'tenant-a', limit: 1 });
    }
    // After the rotations the journal holds only its header line.
    expect(readFileSync(`${path}.journal`, 'utf8').trim().split('\n')).toHaveLength(1);
    await log.close();
    const reopened = new SqliteDecisionLog({ path });
    for (const record of records)
      expect(await reopened.get(record.tenantId, record.decisionId)).toEqual(record);
    expect((await reopened.search({ tenantId: 'tenant-a', limit: 100 })).records).toHaveLength(60);
    await reopened.close();
  });

  it('refuses a cursor it did not make', async () => {
    const log = new SqliteDecisionLog({ path: ':memory:' });
    await expect(log.search({ tenantId: 't', limit: 5, cursor: 'bogus' })).rejects.toMatchObject({
      code: 'invalid_request',
    });
    await log.close();
  });
});
