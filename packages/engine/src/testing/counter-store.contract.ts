import { describe, expect, it } from 'vitest';
import type {
  Aggregation,
  CounterOperation,
  CounterSpec,
  CounterStore,
  CounterValue,
} from '../ports/counter-store.js';
import { type TestClock, testClock } from './list-store.contract.js';

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;
/** Windows are 60 buckets (docs/FEATURES.md): an event counts at most window/60 beyond its window. */
const bucketOf = (windowMs: number) => windowMs / 60;
/** A start on a day boundary, so every tested window's buckets start there too. */
const start = 1_800_000_000_000 - (1_800_000_000_000 % day);

/** Options of {@link counterStoreContract}. */
export interface CounterStoreContractOptions {
  /** Distinct values the adapter counts exactly per key before it estimates (`MemoryCounterStore`: 1,000). */
  readonly exactDistinctLimit: number;
  /** Releases a store after its test (a network adapter's connection); nothing by default. */
  readonly close?: (store: CounterStore) => Promise<void>;
}

/** A counter of one tenant's feature version (ids are opaque to stores). */
export function counterSpec(
  aggregation: Aggregation,
  windowMs = hour,
  id = `t\u0000${aggregation}\u00001`,
): CounterSpec {
  return { id, aggregation, windowMs };
}

/** A `last` counter over a string field (`last_country`, `last_device`). */
export function lastStringSpec(windowMs = hour, id = 't\u0000last_string\u00001'): CounterSpec {
  return { id, aggregation: 'last', windowMs, valueType: 'string' };
}

/** An operation that counts the event under `key`, then reads. */
export function addOperation(
  counter: CounterSpec,
  key: string,
  value: number | string | null = null,
): CounterOperation {
  return { counter, key, update: true, value };
}

/** An operation that only reads (the event does not count: its filter was false). */
export function readOperation(counter: CounterSpec, key: string): CounterOperation {
  return { counter, key, update: false, value: null };
}

/**
 * The contract every `CounterStore` adapter must meet, derived from the port's documentation and
 * the values docs/FEATURES.md promises rules. `open` returns a fresh, empty store; time moves
 * through `apply`'s `at` argument, which the suite takes from `clock` (an adapter whose expiry
 * runs on a clock of its own, such as a TTL, reads the same clock). An empty key reads 0 for
 * `count` and `sum` (so rules such as `features.x >= 5` need no `has()`) and null for every other
 * aggregation. How an adapter frees idle keys is not visible through the port: its own tests
 * check that (for example `MemoryCounterStore.expire`).
 */
export function counterStoreContract(
  name: string,
  open: (clock: TestClock) => Promise<CounterStore>,
  options: CounterStoreContractOptions,
): void {
  const withStore = async (test: (store: CounterStore, clock: TestClock) => Promise<void>) => {
    const clock = testClock(start);
    const store = await open(clock);
    try {
      await test(store, clock);
    } finally {
      await options.close?.(store);
    }
  };
  /** Moves the clock to `start + offset` and applies. */
  const at = (store: CounterStore, clock: TestClock, offset: number, operations: CounterOperation[]) => {
    clock.advance(start + offset - clock.now());
    return store.apply(clock.now(), operations);
  };
  const numeric = ['sum', 'avg', 'min', 'max', 'last', 'first_seen'] as const;

  describe(`${name} (CounterStore contract)`, () => {
    it('answers in operation order, each read including the current event', () =>
      withStore(async (store, clock) => {
        const count = counterSpec('count');
        const sum = counterSpec('sum');
        const distinct = counterSpec('distinct');
        const min = counterSpec('min');
        expect(
          await at(store, clock, 0, [
            addOperation(count, 'a'),
            addOperation(sum, 'a', 5),
            readOperation(count, 'b'),
            addOperation(distinct, 'a', 'x'),
            readOperation(min, 'a'),
            addOperation(min, 'b', 3.5),
          ]),
        ).toEqual([1, 5, 0, 1, null, 3.5]);
        expect(await at(store, clock, second, [addOperation(sum, 'a', 2), addOperation(count, 'a')])).toEqual(
          [7, 2],
        );
        expect(await at(store, clock, second, [])).toEqual([]);
      }));

    it('reads 0 for count and sum and null otherwise for an empty key; reads change nothing', () =>
      withStore(async (store, clock) => {
        const all = (['count', ...numeric, 'distinct'] as const).map((aggregation) =>
          counterSpec(aggregation),
        );
        const reads = () => all.map((counter) => readOperation(counter, 'k'));
        expect(await at(store, clock, 0, reads())).toEqual([0, 0, null, null, null, null, null, 0]);
        expect(await at(store, clock, minute, reads())).toEqual([0, 0, null, null, null, null, null, 0]);
      }));

    it('does not count an operation whose update is false', () =>
      withStore(async (store, clock) => {
        const count = counterSpec('count');
        await at(store, clock, 0, [addOperation(count, 'k')]);
        expect(await at(store, clock, second, [readOperation(count, 'k')])).toEqual([1]);
        expect(await at(store, clock, 2 * second, [readOperation(count, 'k')])).toEqual([1]);
      }));

    for (const windowMs of [30 * second, hour, day, 90 * day]) {
      it(`slides a ${windowMs / 1000}s window: an event counts for the window and at most one bucket more`, () =>
        withStore(async (store, clock) => {
          const count = counterSpec('count', windowMs);
          const bucket = bucketOf(windowMs);
          expect(await at(store, clock, 0, [addOperation(count, 'k')])).toEqual([1]);
          expect(await at(store, clock, windowMs / 2, [addOperation(count, 'k')])).toEqual([2]);
          expect(await at(store, clock, windowMs - 1, [readOperation(count, 'k')])).toEqual([2]);
          expect(await at(store, clock, windowMs + bucket, [readOperation(count, 'k')])).toEqual([1]);
          expect(await at(store, clock, windowMs / 2 + windowMs - 1, [readOperation(count, 'k')])).toEqual([
            1,
          ]);
          expect(
            await at(store, clock, windowMs / 2 + windowMs + bucket, [readOperation(count, 'k')]),
          ).toEqual([0]);
        }));
    }

    it('slides over many buckets', () =>
      withStore(async (store, clock) => {
        const count = counterSpec('count');
        for (let m = 0; m < 120; m++) await at(store, clock, m * minute, [addOperation(count, 'k')]);
        // Events of minutes 60..119 are inside the window; 59 is exactly a window old (may count).
        const [value] = await at(store, clock, 119 * minute, [readOperation(count, 'k')]);
        expect(value).toBeGreaterThanOrEqual(60);
        expect(value).toBeLessThanOrEqual(61);
      }));

    it('computes sum, avg, min, max, last and first_seen over the window', () =>
      withStore(async (store, clock) => {
        const counters = numeric.map((aggregation) => counterSpec(aggregation));
        const all = (value: number) => counters.map((counter) => addOperation(counter, 'k', value));
        expect(await at(store, clock, 0, all(10))).toEqual([10, 10, 10, 10, 10, 0]);
        await at(store, clock, 10 * minute, all(-4.5));
        expect(await at(store, clock, 20 * minute, all(30))).toEqual([35.5, 35.5 / 3, -4.5, 30, 30, 1200]);
        // The first event has left; first_seen is now the second event's age (in seconds).
        expect(
          await at(
            store,
            clock,
            hour + minute,
            counters.map((counter) => readOperation(counter, 'k')),
          ),
        ).toEqual([25.5, 12.75, -4.5, 30, 30, 3060]);
        expect(
          await at(
            store,
            clock,
            20 * minute + hour + minute,
            counters.map((counter) => readOperation(counter, 'k')),
          ),
        ).toEqual([0, null, null, null, null, null]);
      }));

    it('keeps the newest value for last', () =>
      withStore(async (store, clock) => {
        const last = counterSpec('last');
        await at(store, clock, 0, [addOperation(last, 'k', 1)]);
        await at(store, clock, minute, [addOperation(last, 'k', 2)]);
        expect(await at(store, clock, 2 * minute, [addOperation(last, 'k', -7)])).toEqual([-7]);
        expect(await at(store, clock, 3 * minute, [readOperation(last, 'k')])).toEqual([-7]);
      }));

    it('keeps the newest string for last of strings, as it came, within the window', () =>
      withStore(async (store, clock) => {
        const last = lastStringSpec();
        expect(await at(store, clock, 0, [readOperation(last, 'acct')])).toEqual([null]);
        expect(await at(store, clock, 0, [addOperation(last, 'acct', 'FR')])).toEqual(['FR']);
        expect(await at(store, clock, minute, [addOperation(last, 'acct', 'DE')])).toEqual(['DE']);
        // A read, an update that does not count and an update without a value change nothing.
        expect(
          await at(store, clock, 2 * minute, [
            readOperation(last, 'acct'),
            { counter: last, key: 'acct', update: false, value: 'US' },
            addOperation(last, 'acct', null),
          ]),
        ).toEqual(['DE', 'DE', 'DE']);
        // Text that looks like a number, is empty, or holds separators and non-ASCII stays text.
        for (const text of ['007', '1e3', 'inf', '', 'a:b {t}\u0000 ü 🙂', ' NaN ']) {
          expect(await at(store, clock, 3 * minute, [addOperation(last, 'text', text)])).toEqual([text]);
          expect(await at(store, clock, 3 * minute, [readOperation(last, 'text')])).toEqual([text]);
        }
      }));

    it('forgets the last string once it is older than the window (and a bucket), then starts afresh', () =>
      withStore(async (store, clock) => {
        let base = 0;
        for (const windowMs of [30 * second, hour, 90 * day]) {
          const last = lastStringSpec(windowMs, `t\u0000last_${windowMs}\u00001`);
          const bucket = bucketOf(windowMs);
          const gone = base + windowMs / 2 + windowMs + bucket;
          await at(store, clock, base, [addOperation(last, 'k', 'old')]);
          await at(store, clock, base + windowMs / 2, [addOperation(last, 'k', 'new')]);
          expect(await at(store, clock, gone - bucket - 1, [readOperation(last, 'k')])).toEqual(['new']);
          expect(await at(store, clock, gone, [readOperation(last, 'k')])).toEqual([null]);
          expect(await at(store, clock, gone, [addOperation(last, 'k', 'again')])).toEqual(['again']);
          base = gone + day;
        }
      }));

    it('keeps numbers and strings apart: last of numbers answers numbers, last of strings strings', () =>
      withStore(async (store, clock) => {
        const numbers = counterSpec('last');
        const strings = lastStringSpec();
        const distinct = counterSpec('distinct');
        expect(
          await at(store, clock, 0, [
            addOperation(numbers, 'k', 5),
            addOperation(strings, 'k', '5'),
            addOperation(distinct, 'k', '5'),
            addOperation(strings, 'other', 'x'),
            readOperation(lastStringSpec(hour, 'u\u0000last_string\u00001'), 'k'),
            readOperation(lastStringSpec(hour, 't\u0000last_string\u00002'), 'k'),
          ]),
        ).toEqual([5, '5', 1, 'x', null, null]);
        expect(
          await at(store, clock, second, [readOperation(strings, 'k'), readOperation(strings, 'other')]),
        ).toEqual(['5', 'x']);
        await store.drop([strings.id]);
        expect(
          await at(store, clock, second, [readOperation(strings, 'k'), readOperation(numbers, 'k')]),
        ).toEqual([null, 5]);
      }));

    it('counts distinct values exactly up to the limit, sliding', () =>
      withStore(async (store, clock) => {
        const distinct = counterSpec('distinct');
        await at(store, clock, 0, [addOperation(distinct, 'd', 'a')]);
        await at(store, clock, minute, [addOperation(distinct, 'd', 'b')]);
        expect(await at(store, clock, 2 * minute, [addOperation(distinct, 'd', 'a')])).toEqual([2]);
        // 'b' leaves the window; 'a' was seen again later.
        expect(await at(store, clock, hour + 2 * minute, [readOperation(distinct, 'd')])).toEqual([1]);

        const exact = counterSpec('distinct', hour, 't\u0000exact\u00001');
        let value: CounterValue[] = [];
        for (let index = 0; index < options.exactDistinctLimit; index++)
          value = await at(store, clock, 3 * hour, [addOperation(exact, 'd', `v-${index}`)]);
        expect(value).toEqual([options.exactDistinctLimit]);
        expect(await at(store, clock, 3 * hour, [addOperation(exact, 'd', 'v-0')])).toEqual([
          options.exactDistinctLimit,
        ]);
      }));

    it('estimates distinct values beyond the exact limit within 10% (3 standard errors), sliding', () =>
      withStore(async (store, clock) => {
        const distinct = counterSpec('distinct');
        const total = Math.max(20 * options.exactDistinctLimit, 2000);
        const perMinute = total / 20;
        let value: CounterValue[] = [];
        for (let index = 0; index < total; index++) {
          value = await at(store, clock, Math.floor(index / perMinute) * minute, [
            addOperation(distinct, 'd', `v-${index}`),
          ]);
        }
        expect(Math.abs((value[0] as number) - total) / total).toBeLessThan(0.1);
        // Values of the first ten minutes leave the window: about half remain.
        const [later] = await at(store, clock, hour + 10 * minute, [readOperation(distinct, 'd')]);
        expect(Math.abs((later as number) - total / 2) / (total / 2)).toBeLessThan(0.1);
      }));

    it('starts a key idle for longer than its window afresh, also whole rings later', () =>
      withStore(async (store, clock) => {
        const counters = (['count', 'sum', 'max', 'last', 'first_seen', 'distinct'] as const).map(
          (aggregation) => counterSpec(aggregation),
        );
        const all = (key: string, value: number) =>
          counters.map((counter) =>
            addOperation(counter, key, counter.aggregation === 'distinct' ? `${value}` : value),
          );
        // An in-process ring of 61 one-minute buckets reuses a slot every 61 minutes: the slots of
        // these first events come round again below, and nothing old may show through.
        await at(store, clock, 0, [...all('j', 5), ...all('k', 5)]);
        await at(store, clock, minute, all('k', 6));
        expect(await at(store, clock, 61 * minute, all('j', 1))).toEqual([1, 1, 1, 1, 0, 1]);
        expect(await at(store, clock, 122 * minute, all('k', 1))).toEqual([1, 1, 1, 1, 0, 1]);
        expect(await at(store, clock, 61 * 51 * minute, all('j', 2))).toEqual([1, 2, 2, 2, 0, 1]);
        expect(await at(store, clock, 61 * 52 * minute, all('k', 2))).toEqual([1, 2, 2, 2, 0, 1]);
      }));

    it('forgets every key of a dropped counter, and only those', () =>
      withStore(async (store, clock) => {
        const dropped = counterSpec('count', hour, 't\u0000old\u00001');
        const kept = counterSpec('count', hour, 't\u0000other\u00001');
        await at(store, clock, 0, [
          addOperation(dropped, 'a'),
          addOperation(dropped, 'b'),
          addOperation(kept, 'a'),
        ]);
        await store.drop([dropped.id, 'never-existed']);
        expect(
          await at(store, clock, second, [
            readOperation(dropped, 'a'),
            readOperation(dropped, 'b'),
            readOperation(kept, 'a'),
          ]),
        ).toEqual([0, 0, 1]);
        expect(await at(store, clock, second, [addOperation(dropped, 'a')])).toEqual([1]);
        await store.drop([]);
      }));

    it('never mixes counters (tenants, features, versions) or keys', () =>
      withStore(async (store, clock) => {
        const tenantA = counterSpec('sum', hour, 'a\u0000logins\u00001');
        const tenantB = counterSpec('sum', hour, 'b\u0000logins\u00001');
        const nextVersion = counterSpec('sum', hour, 'a\u0000logins\u00002');
        const otherAggregation = counterSpec('max', hour, 'a\u0000logins_max\u00001');
        expect(
          await at(store, clock, 0, [
            addOperation(tenantA, 'k', 1),
            addOperation(tenantB, 'k', 10),
            addOperation(nextVersion, 'k', 100),
            addOperation(otherAggregation, 'k', 1000),
            addOperation(tenantA, 'k2', 7),
          ]),
        ).toEqual([1, 10, 100, 1000, 7]);
        expect(
          await at(store, clock, second, [
            readOperation(tenantA, 'k'),
            readOperation(tenantB, 'k'),
            readOperation(tenantB, 'k2'),
            readOperation(nextVersion, 'k2'),
          ]),
        ).toEqual([1, 10, 0, 0]);
      }));

    it('applies concurrent calls atomically: each sees its own event and those before it', () =>
      withStore(async (store, clock) => {
        const count = counterSpec('count');
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.apply(clock.now(), [addOperation(count, 'k')])),
        );
        expect(results.map(([value]) => value).sort((a, b) => (a as number) - (b as number))).toEqual(
          Array.from({ length: 20 }, (_, index) => index + 1),
        );
      }));
  });
}
