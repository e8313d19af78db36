import { describe, expect, it } from 'vitest';
import type { ListValueType } from '../lists/list-values.js';
import type { ListDefinition, ListEntry, ListStore } from '../ports/list-store.js';

/** A controllable clock for TTL tests. */
export interface TestClock {
  now: () => number;
  advance(ms: number): void;
}

export function testClock(start = 1_800_000_000_000): TestClock {
  let now = start;
  return {
    now: () => now,
    advance(ms) {
      now += ms;
    },
  };
}

export function listDefinition(
  tenantId: string,
  name: string,
  type: ListValueType = 'string',
  kind: ListDefinition['kind'] = 'block',
): ListDefinition {
  return {
    tenantId,
    name,
    kind,
    type,
    description: null,
    createdAt: '2026-11-25T00:00:00.000Z',
    updatedAt: '2026-11-25T00:00:00.000Z',
  };
}

/** An entry with a stored (already normalised) value. */
export function listEntry(
  value: string,
  expiresAt: number | null = null,
  note: string | null = null,
): ListEntry {
  return { value, expiresAt, note, updatedAt: 1 };
}

/**
 * The contract every `ListStore` adapter must meet. `open` gets the clock the store must use and
 * returns a fresh, empty store.
 */
export function listStoreContract(name: string, open: (clock: TestClock) => Promise<ListStore>): void {
  const withStore = async (test: (store: ListStore, clock: TestClock) => Promise<void>) => {
    const clock = testClock();
    const store = await open(clock);
    try {
      await test(store, clock);
    } finally {
      await store.close();
    }
  };

  describe(`${name} (ListStore contract)`, () => {
    it('keeps definitions per tenant and answers a batch of lookups in order', () =>
      withStore(async (store) => {
        await store.putList(listDefinition('t-a', 'devices', 'device'));
        await store.putList(listDefinition('t-b', 'devices', 'device'));
        expect(await store.putEntries('t-a', 'devices', [listEntry('d-1'), listEntry('d-2')])).toEqual({
          added: 2,
          updated: 0,
        });
        expect(await store.putEntries('t-a', 'devices', [listEntry('d-2'), listEntry('d-3')])).toEqual({
          added: 1,
          updated: 1,
        });
        expect((await store.lists('t-a')).map((list) => list.name)).toEqual(['devices']);
        expect(await store.size('t-a', 'devices')).toBe(3);
        expect(
          await store.lookup('t-a', [
            { list: 'devices', value: 'd-3' },
            { list: 'devices', value: 'D-3' },
            { list: 'unknown', value: 'd-1' },
            { list: 'devices', value: 'd-1' },
          ]),
        ).toEqual([true, false, false, true]);
        // Tenant B's list of the same name is another list.
        expect(await store.lookup('t-b', [{ list: 'devices', value: 'd-1' }])).toEqual([false]);
        expect(await store.entries('t-b', 'devices', { limit: 10 })).toEqual([]);
      }));

    it('matches IPv4 and IPv6 addresses against single addresses and CIDR ranges', () =>
      withStore(async (store) => {
        await store.putList(listDefinition('t', 'ips', 'ip'));
        await store.putEntries('t', 'ips', [
          listEntry('198.51.100.0/24'),
          listEntry('203.0.113.7'),
          listEntry('2001:db8:1::/48'),
          listEntry('2001:db8:ffff::1'),
        ]);
        const ask = (...values: string[]) =>
          store.lookup(
            't',
            values.map((value) => ({ list: 'ips', value })),
          );
        expect(await ask('198.51.100.0', '198.51.100.255', '198.51.101.0', '198.51.99.255')).toEqual([
          true,
          true,
          false,
          false,
        ]);
        expect(await ask('203.0.113.7', '203.0.113.8', '::ffff:203.0.113.7')).toEqual([true, false, true]);
        expect(await ask('2001:db8:1:ffff::9', '2001:0db8:0001::', '2001:db8:2::1')).toEqual([
          true,
          true,
          false,
        ]);
        expect(await ask('2001:db8:ffff::1', '2001:db8:ffff::2')).toEqual([true, false]);
        // A range is itself a value of the list; text that is no address matches nothing.
        expect(await ask('198.51.100.0/24', '198.51.100.0/25', 'not-an-ip', '')).toEqual([
          true,
          false,
          false,
          false,
        ]);
      }));

    it('never matches or exports an expired entry, and an inner range keeps matching after an outer one expires', () =>
      withStore(async (store, clock) => {
        await store.putList(listDefinition('t', 'ips', 'ip'));
        const start = clock.now();
        await store.putEntries('t', 'ips', [
          listEntry('10.0.0.0/8', start + 1000),
          listEntry('10.1.0.0/16', start + 5000),
          listEntry('10.1.2.3', null),
        ]);
        const ask = (value: string) => store.lookup('t', [{ list: 'ips', value }]);
        expect(await ask('10.200.0.1')).toEqual([true]);
        clock.advance(999);
        expect(await ask('10.200.0.1')).toEqual([true]);
        clock.advance(1);
        expect(await ask('10.200.0.1')).toEqual([false]);
        expect(await ask('10.1.9.9')).toEqual([true]);
        expect((await store.entries('t', 'ips', { limit: 10 })).map((entry) => entry.value)).toEqual([
          '10.1.0.0/16',
          '10.1.2.3',
        ]);
        clock.advance(4000);
        expect(await ask('10.1.9.9')).toEqual([false]);
        expect(await ask('10.1.2.3')).toEqual([true]);
        // Writing an expired value again makes it a new, live entry.
        expect(await store.putEntries('t', 'ips', [listEntry('10.0.0.0/8')])).toEqual({
          added: 1,
          updated: 0,
        });
        expect(await ask('10.200.0.1')).toEqual([true]);
      }));

    it('removes entries and lists', () =>
      withStore(async (store) => {
        await store.putList(listDefinition('t', 'ips', 'ip'));
        await store.putEntries('t', 'ips', [listEntry('192.0.2.0/24'), listEntry('192.0.2.9')]);
        expect(await store.deleteEntry('t', 'ips', '192.0.2.0/24')).toBe(true);
        expect(await store.deleteEntry('t', 'ips', '192.0.2.0/24')).toBe(false);
        expect(await store.lookup('t', [{ list: 'ips', value: '192.0.2.1' }])).toEqual([false]);
        expect(await store.lookup('t', [{ list: 'ips', value: '192.0.2.9' }])).toEqual([true]);
        expect(await store.deleteList('t', 'ips')).toBe(true);
        expect(await store.deleteList('t', 'ips')).toBe(false);
        expect(await store.lookup('t', [{ list: 'ips', value: '192.0.2.9' }])).toEqual([false]);
        expect(await store.lists('t')).toEqual([]);
        await store.putList(listDefinition('t', 'ips', 'ip'));
        expect(await store.size('t', 'ips')).toBe(0);
      }));

    it('exports live entries in value order, page by page, with notes and expiry', () =>
      withStore(async (store, clock) => {
        await store.putList(listDefinition('t', 'accounts', 'account'));
        const values = Array.from({ length: 25 }, (_, index) => `acct-${String(index).padStart(3, '0')}`);
        await store.putEntries(
          't',
          'accounts',
          values.map((value, index) =>
            listEntry(value, index === 0 ? clock.now() + 60_000 : null, `note ${index}`),
          ),
        );
        const seen: ListEntry[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await store.entries('t', 'accounts', {
            limit: 10,
            ...(after !== undefined && { after }),
          });
          seen.push(...page);
          if (page.length < 10) break;
          after = page.at(-1)?.value;
        }
        expect(seen.map((entry) => entry.value)).toEqual(values);
        expect(seen[0]).toMatchObject({ note: 'note 0', expiresAt: clock.now() + 60_000 });
        expect(seen[1]).toMatchObject({ note: 'note 1', expiresAt: null });
      }));

    it('forgets a deleted tenant', () =>
      withStore(async (store) => {
        await store.putList(listDefinition('t-a', 'emails', 'email'));
        await store.putList(listDefinition('t-b', 'emails', 'email'));
        await store.putEntries('t-a', 'emails', [listEntry('a@example.com')]);
        await store.putEntries('t-b', 'emails', [listEntry('a@example.com')]);
        await store.deleteTenant('t-a');
        expect(await store.lists('t-a')).toEqual([]);
        expect(await store.lookup('t-a', [{ list: 'emails', value: 'a@example.com' }])).toEqual([false]);
        expect(await store.lookup('t-b', [{ list: 'emails', value: 'a@example.com' }])).toEqual([true]);
      }));
  });
}
