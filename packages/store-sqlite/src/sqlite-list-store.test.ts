import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listDefinition, listEntry, listStoreContract, testClock } from '@vigil/engine/testing';
import { describe, expect, it } from 'vitest';
import { SqliteListStore } from './sqlite-list-store.js';

listStoreContract(
  'SqliteListStore',
  async (clock) =>
    new SqliteListStore({ path: ':memory:', now: clock.now, sweepIntervalMs: 0, chunkSize: 7 }),
);

describe('SqliteListStore on disk', () => {
  it('loads lists and live entries again after a reopen, and sweeps expired rows from disk', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'vigil-lists-')), 'lists.db');
    const clock = testClock();
    const store = new SqliteListStore({ path, now: clock.now, sweepIntervalMs: 0 });
    await store.putList(listDefinition('t', 'ips', 'ip'));
    await store.putEntries('t', 'ips', [
      listEntry('198.51.100.0/24', null, 'office'),
      listEntry('203.0.113.9', clock.now() + 1000),
    ]);
    await store.close();

    const reopened = new SqliteListStore({ path, now: clock.now, sweepIntervalMs: 0 });
    expect(reopened.names('t')).toEqual(['ips']);
    expect(
      await reopened.lookup('t', [
        { list: 'ips', value: '198.51.100.20' },
        { list: 'ips', value: '203.0.113.9' },
      ]),
    ).toEqual([true, true]);
    expect((await reopened.entries('t', 'ips', { limit: 10 }))[0]).toMatchObject({ note: 'office' });
    clock.advance(1000);
    reopened.sweep();
    await reopened.close();

    const again = new SqliteListStore({ path, now: clock.now, sweepIntervalMs: 0 });
    expect(await again.size('t', 'ips')).toBe(1);
    expect(await again.lookup('t', [{ list: 'ips', value: '203.0.113.9' }])).toEqual([false]);
    await again.close();
  });

  it('starts a list empty when its type changes', async () => {
    const store = new SqliteListStore({ path: ':memory:', sweepIntervalMs: 0 });
    await store.putList(listDefinition('t', 'things', 'string'));
    await store.putEntries('t', 'things', [listEntry('1.2.3.4')]);
    await store.putList(listDefinition('t', 'things', 'ip'));
    expect(await store.size('t', 'things')).toBe(0);
    expect(await store.entries('t', 'things', { limit: 10 })).toEqual([]);
    await store.close();
  });
});
