import { describe, expect, it } from 'vitest';
import { listDefinition, listEntry, listStoreContract, testClock } from '../testing/list-store.contract.js';
import { DecisionLists } from './decision-lists.js';
import { MemoryListStore } from './memory-list-store.js';

listStoreContract('MemoryListStore', async (clock) => new MemoryListStore({ now: clock.now }));

describe('MemoryListStore sweeping', () => {
  it('removes expired entries a batch at a time', async () => {
    const clock = testClock();
    const store = new MemoryListStore({ now: clock.now });
    await store.putList(listDefinition('t', 'devices', 'device'));
    const entries = Array.from({ length: 100 }, (_, index) =>
      listEntry(`d-${index}`, index % 2 === 0 ? clock.now() + 1000 : null),
    );
    await store.putEntries('t', 'devices', entries);
    clock.advance(1000);
    expect(await store.size('t', 'devices')).toBe(100);
    for (let round = 0; round < 20; round++) store.sweep(10);
    expect(await store.size('t', 'devices')).toBe(50);
    expect(await store.lookup('t', [{ list: 'devices', value: 'd-1' }])).toEqual([true]);
  });
});

describe('DecisionLists', () => {
  it('looks each (list, value) up once per decision', async () => {
    const store = new MemoryListStore();
    await store.putList(listDefinition('t', 'emails', 'email'));
    await store.putEntries('t', 'emails', [listEntry('bad@example.com')]);
    const asked: string[] = [];
    const lists = new DecisionLists(
      {
        names: (tenantId) => store.names(tenantId),
        contains: (tenantId, list, value) => {
          asked.push(`${list}:${String(value)}`);
          return store.contains(tenantId, list, value);
        },
      },
      't',
    );
    expect(lists.inList('emails', 'Bad@Example.com')).toBe(true);
    expect(lists.inList('emails', 'Bad@Example.com')).toBe(true);
    expect(lists.inList('emails', 'good@example.com')).toBe(false);
    expect(lists.inList('emails', 'good@example.com')).toBe(false);
    expect(asked).toEqual(['emails:Bad@Example.com', 'emails:good@example.com']);
  });
});
