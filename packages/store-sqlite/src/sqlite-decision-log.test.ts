import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('refuses a cursor it did not make', async () => {
    const log = new SqliteDecisionLog({ path: ':memory:' });
    await expect(log.search({ tenantId: 't', limit: 5, cursor: 'bogus' })).rejects.toMatchObject({
      code: 'invalid_request',
    });
    await log.close();
  });
});
