import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { decisionLogContract, sampleRecord } from '@vigil/engine/testing';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import { SqliteDecisionLog } from './sqlite-decision-log.js';
import { writerNice } from './sqlite-log-writer.js';

decisionLogContract('SqliteDecisionLog', async () => new SqliteDecisionLog({ path: ':memory:' }));
// Every record waiting for SQLite kept as a journal reference (as during a long store outage).
decisionLogContract(
  'SqliteDecisionLog, records waiting as journal references',
  async () => new SqliteDecisionLog({ path: ':memory:', memoryRecords: 0 }),
);

/** Threads of this process running at `nice` (Linux). */
function threadsAtNice(nice: number): number {
  let count = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) === nice) count += 1;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return count;
}

describe('SqliteDecisionLog on disk', () => {
  it.runIf(process.platform === 'linux')('runs its writer thread below normal priority', async () => {
    const before = threadsAtNice(writerNice);
    const log = new SqliteDecisionLog({ path: ':memory:' });
    await log.append(sampleRecord());
    await log.get('none', 'none');
    await vi.waitFor(() => expect(threadsAtNice(writerNice)).toBe(before + 1));
    await log.close();
    expect(threadsAtNice(writerNice)).toBe(before);
  });

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

  it('indexes every entity of every record, past the 100 rows one insert takes', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    const log = new SqliteDecisionLog({ path });
    // 257 records of 3 entities: 771 index rows, so seven full inserts of 100 and 71 rows alone.
    await Promise.all(
      Array.from({ length: 257 }, (_, i) =>
        log.append({
          decisionId: `d${String(i).padStart(4, '0')}`,
          tenantId: i % 2 === 0 ? 't' : 'u',
          kind: 'decision',
          createdAt: 1000 + i,
          event: { type: 'x', id: `e${i}`, timestamp: 't', fields: {} },
          verdict: 'accept',
          response: null,
          ruleIds: [],
          entities: [`acct-${i % 7}`, `ip-${i % 3}`, `one-${i}`],
        }),
      ),
    );
    const found = async (tenantId: string, entity: string) =>
      (await log.search({ tenantId, entity, limit: 1000 })).records.map((record) => record.decisionId).sort();
    const expected = (tenantId: string, match: (i: number) => boolean) =>
      Array.from({ length: 257 }, (_, i) => i)
        .filter((i) => (i % 2 === 0 ? 't' : 'u') === tenantId && match(i))
        .map((i) => `d${String(i).padStart(4, '0')}`);
    for (const tenantId of ['t', 'u']) {
      for (let n = 0; n < 7; n += 1)
        expect(await found(tenantId, `acct-${n}`)).toEqual(expected(tenantId, (i) => i % 7 === n));
      for (let n = 0; n < 3; n += 1)
        expect(await found(tenantId, `ip-${n}`)).toEqual(expected(tenantId, (i) => i % 3 === n));
    }
    for (const i of [0, 99, 100, 255, 256]) {
      const tenantId = i % 2 === 0 ? 't' : 'u';
      expect(await found(tenantId, `one-${i}`)).toEqual([`d${String(i).padStart(4, '0')}`]);
    }
    await log.close();
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
    // After the rotations the journal holds only its header line, and the journals the rotations
    // renamed away are deleted (in the background).
    expect(readFileSync(`${path}.journal`, 'utf8').trim().split('\n')).toHaveLength(1);
    const retired = () => readdirSync(dirname(path)).filter((name) => name.includes('.journal.retired-'));
    await vi.waitFor(() => expect(retired()).toEqual([]));
    await log.close();
    // One left behind by a process that died before deleting it goes on the next open.
    writeFileSync(`${path}.journal.retired-7`, 'lines SQLite already has\n');
    const reopened = new SqliteDecisionLog({ path });
    expect(retired()).toEqual([]);
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

  it('spools batches in the journal while SQLite is refused, and delivers each once when it is back', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    let down = true;
    const log = new SqliteDecisionLog({
      path,
      storeWriteGuard: (write) =>
        down ? Promise.reject(new Error('decision_log store unavailable (injected)')) : write(),
    });
    const records = Array.from({ length: 30 }, () => sampleRecord());
    for (const batch of [records.slice(0, 10), records.slice(10, 20), records.slice(20)]) {
      await Promise.all(batch.map((record) => log.append(record)));
    }
    expect(log.spooled()).toBe(30);
    expect(log.storeError()).toContain('injected');
    // Answered records are readable at once, searchable once SQLite has them.
    for (const record of records) expect(await log.get(record.tenantId, record.decisionId)).toEqual(record);
    expect((await log.search({ tenantId: 'tenant-a', limit: 100 })).records).toHaveLength(0);
    down = false;
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 10_000, interval: 50 });
    expect((await log.search({ tenantId: 'tenant-a', limit: 100 })).records).toHaveLength(30);
    await log.close();
    const db = new Database(path, { readonly: true });
    const counts = db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT decision_id) AS d FROM records').get();
    db.close();
    expect(counts).toEqual({ n: 30, d: 30 });
  });

  // Four event-loop turns of 10 records while the store is down: four journal batches, one after
  // another in the journal. Merged without a limit they are one attempt once the store is back;
  // with a limit of 25, 10 + 10 merge and a third 10 would pass it, so it starts a second batch.
  it.each([
    { limit: undefined, attempts: 1 },
    { limit: 25, attempts: 2 },
  ])(
    'merges the batches spooled during an outage (limit $limit): $attempts attempt(s) once the store is back',
    async ({ limit, attempts }) => {
      const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
      let down = true;
      let attemptsWhileUp = 0;
      const log = new SqliteDecisionLog({
        path,
        ...(limit !== undefined && { spoolBatchRecords: limit }),
        storeWriteGuard: (write) => {
          if (down) return Promise.reject(new Error('decision_log store unavailable (injected)'));
          attemptsWhileUp += 1;
          return write();
        },
      });
      const records = Array.from({ length: 40 }, () => sampleRecord());
      for (let turn = 0; turn < 4; turn++) {
        await Promise.all(records.slice(turn * 10, turn * 10 + 10).map((record) => log.append(record)));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(log.spooled()).toBe(40);
      down = false;
      await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 10_000, interval: 20 });
      expect(attemptsWhileUp).toBe(attempts);
      await log.close();
      const db = new Database(path, { readonly: true });
      const counts = db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT decision_id) AS d FROM records').get();
      db.close();
      expect(counts).toEqual({ n: 40, d: 40 });
    },
  );

  it('keeps records beyond memoryRecords as journal references, read back whole while the store is down', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    let down = true;
    const log = new SqliteDecisionLog({
      path,
      memoryRecords: 3,
      storeWriteGuard: (write) => (down ? Promise.reject(new Error('down (injected)')) : write()),
    });
    // Multi-byte text, so that a line's place in the journal must be counted in bytes.
    const records = Array.from({ length: 12 }, (_, index) =>
      sampleRecord({
        event: {
          type: 'payment',
          id: `évt-${index}-€`,
          timestamp: '2026-11-24T12:00:00Z',
          fields: { account_id: `u-${index}`, city: 'Zürich 🏔️'.repeat(index + 1) },
        },
      }),
    );
    for (let turn = 0; turn < 3; turn++) {
      await Promise.all(records.slice(turn * 4, turn * 4 + 4).map((record) => log.append(record)));
    }
    expect(log.spooled()).toBe(12);
    for (const record of records) {
      const read = await log.get(record.tenantId, record.decisionId);
      expect(read).toEqual(record);
      // Read back from the journal, not the object appended: the node does not hold it.
      expect(read).not.toBe(record);
      expect(await log.get('tenant-other', record.decisionId)).toBeUndefined();
      expect(await log.findByEventId(record.tenantId, record.event.id, 0, 'decision')).toEqual(record);
    }
    down = false;
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 10_000, interval: 20 });
    for (const record of records) expect(await log.get(record.tenantId, record.decisionId)).toEqual(record);
    await log.close();
  });

  it('journals the same line whether or not the response comes as JSON text', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    const log = new SqliteDecisionLog({ path });
    const plain = sampleRecord({ features: { txn_count_1h: 3, name: 'Zürich €' } });
    const textual = { ...plain, decisionId: `${plain.decisionId}-text` };
    const bare = sampleRecord();
    const bareText = { ...bare, decisionId: `${bare.decisionId}-text` };
    await Promise.all([
      log.append(plain),
      log.append(textual, JSON.stringify(textual.response)),
      log.append(bare),
      log.append(bareText, JSON.stringify(bareText.response)),
    ]);
    const body = (line: string) => line.slice(line.indexOf('\t') + 1);
    const lines = readFileSync(`${path}.journal`, 'utf8').trim().split('\n').slice(1);
    expect(lines).toHaveLength(4);
    expect(body(lines[1] as string)).toBe(body(lines[0] as string));
    expect(body(lines[3] as string)).toBe(body(lines[2] as string));
    expect(JSON.parse(body(lines[1] as string))).toEqual({
      event: textual.event,
      response: textual.response,
      features: textual.features,
    });
    await log.close();
    const reopened = new SqliteDecisionLog({ path });
    for (const record of [plain, textual, bare, bareText])
      expect(await reopened.get(record.tenantId, record.decisionId)).toEqual(record);
    await reopened.close();
  });

  it.each([
    ['held in memory', 20_000],
    ['kept as journal references', 0],
  ])('writes a turn larger than its line buffer whole, records %s', async (_, memoryRecords) => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    let down = true;
    const log = new SqliteDecisionLog({
      path,
      memoryRecords,
      storeWriteGuard: (write) => (down ? Promise.reject(new Error('down (injected)')) : write()),
    });
    // About 12 KiB of multi-byte text per record, 100 records in one turn: over 1 MiB, several
    // times the line buffer's first size, so it grows within the turn.
    const records = Array.from({ length: 100 }, (_, index) =>
      sampleRecord({
        event: {
          type: 'payment',
          id: `évt-big-${index}`,
          timestamp: '2026-11-24T12:00:00Z',
          fields: { account_id: `u-${index}`, note: `${index}:${'Zürich 🏔️ €'.repeat(1000)}` },
        },
      }),
    );
    await Promise.all(records.map((record) => log.append(record)));
    const journal = readFileSync(`${path}.journal`, 'utf8').trim().split('\n');
    expect(journal).toHaveLength(101);
    for (const record of records) expect(await log.get(record.tenantId, record.decisionId)).toEqual(record);
    // The next, small turn is written after it, from the buffer at its usual size.
    const after = sampleRecord();
    await log.append(after);
    expect(await log.get(after.tenantId, after.decisionId)).toEqual(after);
    down = false;
    await log.close();
    const reopened = new SqliteDecisionLog({ path });
    for (const record of [...records, after])
      expect(await reopened.get(record.tenantId, record.decisionId)).toEqual(record);
    await reopened.close();
  });

  it('offers the spooled batches once more on close, so a clean stop leaves nothing behind', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    let down = true;
    const log = new SqliteDecisionLog({
      path,
      storeWriteGuard: (write) => (down ? Promise.reject(new Error('down (injected)')) : write()),
    });
    const records = Array.from({ length: 10 }, () => sampleRecord());
    await Promise.all(records.map((record) => log.append(record)));
    expect(log.spooled()).toBe(10);
    down = false;
    await log.close();
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT COUNT(*) AS n FROM records').get()).toEqual({ n: 10 });
    db.close();
  });

  it('keeps journal order when SQLite itself fails a batch, and loses nothing across reopen', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    const log = new SqliteDecisionLog({ path });
    const first = Array.from({ length: 5 }, () => sampleRecord());
    await Promise.all(first.map((record) => log.append(record)));
    await log.search({ tenantId: 'tenant-a', limit: 1 });
    // Another connection holds the write lock: the writer's inserts fail once its busy timeout ends.
    const locker = new Database(path);
    locker.exec('BEGIN EXCLUSIVE');
    const during = Array.from({ length: 5 }, () => sampleRecord());
    await Promise.all(during.map((record) => log.append(record)));
    await vi.waitFor(() => expect(log.spooled()).toBe(5), { timeout: 15_000, interval: 50 });
    const later = Array.from({ length: 5 }, () => sampleRecord());
    await Promise.all(later.map((record) => log.append(record)));
    expect(log.spooled()).toBe(10);
    locker.exec('ROLLBACK');
    locker.close();
    await vi.waitFor(() => expect(log.spooled()).toBe(0), { timeout: 15_000, interval: 50 });
    await log.close();
    const reopened = new SqliteDecisionLog({ path });
    const all = [...first, ...during, ...later];
    for (const record of all) expect(await reopened.get(record.tenantId, record.decisionId)).toEqual(record);
    expect((await reopened.search({ tenantId: 'tenant-a', limit: 100 })).records).toHaveLength(15);
    await reopened.close();
  }, 30_000);

  it('inserts the spooled records on the next open after a SIGKILL', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-log-')), 'decisions.db');
    const script = `
      const { SqliteDecisionLog } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      let calls = 0;
      const log = new SqliteDecisionLog({ path: ${JSON.stringify(path)},
        storeWriteGuard: (write) => (++calls > 1 ? Promise.reject(new Error('down')) : write()) });
      for (let turn = 0; turn < 4; turn++) {
        const appends = [];
        for (let i = 0; i < 50; i++) {
          const n = turn * 50 + i;
          appends.push(log.append({ decisionId: 'd' + n, tenantId: 't', kind: 'decision', createdAt: 1000 + n,
            event: { type: 'x', id: 'e' + n, timestamp: 't', fields: {} }, verdict: 'accept', response: null,
            ruleIds: ['r'], entities: ['acct-' + (n % 2)] }));
        }
        await Promise.all(appends);
      }
      // Later turns' batches go to the writer once the first batch settles; then they are refused.
      for (let waited = 0; log.spooled() < 150 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
      if (log.spooled() !== 150) throw new Error('expected 150 spooled, got ' + log.spooled());
      process.kill(process.pid, 'SIGKILL');
    `;
    const scriptFile = join(dirname(path), 'spool-and-die.mjs');
    writeFileSync(scriptFile, script);
    const child = spawnSync(process.execPath, [scriptFile]);
    expect(child.signal, child.stderr.toString()).toBe('SIGKILL');
    const log = new SqliteDecisionLog({ path });
    expect((await log.search({ tenantId: 't', limit: 1000 })).records).toHaveLength(200);
    expect((await log.search({ tenantId: 't', entity: 'acct-1', limit: 1000 })).records).toHaveLength(100);
    expect(await log.findByEventId('t', 'e199', 0, 'decision')).toMatchObject({ decisionId: 'd199' });
    await log.close();
  });
});
