import { describe, expect, it } from 'vitest';
import type { Aggregation, CounterOperation, CounterSpec } from '../ports/counter-store.js';
import { counterStoreContract } from '../testing/counter-store.contract.js';
import { exactDistinctLimit, MemoryCounterStore } from './memory-counter-store.js';
import { SlidingHyperLogLog } from './sliding-hyperloglog.js';

counterStoreContract('MemoryCounterStore', async () => new MemoryCounterStore(), { exactDistinctLimit });
counterStoreContract(
  'MemoryCounterStore with a small exact limit',
  async () => new MemoryCounterStore({ exactDistinctLimit: 100 }),
  { exactDistinctLimit: 100 },
);

const minute = 60_000;
const hour = 60 * minute;
/** A 1 h window has 60 buckets of 1 min. Times start on a bucket boundary. */
const t0 = 1_800_000_000_000 - (1_800_000_000_000 % hour);

const spec = (aggregation: Aggregation, windowMs = hour, id = aggregation): CounterSpec => ({
  id,
  aggregation,
  windowMs,
});
const add = (counter: CounterSpec, key: string, value: number | string | null = null): CounterOperation => ({
  counter,
  key,
  update: true,
  value,
});
const read = (counter: CounterSpec, key: string): CounterOperation => ({
  counter,
  key,
  update: false,
  value: null,
});

describe('MemoryCounterStore', () => {
  it('counts within the window, exact to one bucket (1/60), and includes the current event', async () => {
    const store = new MemoryCounterStore();
    const count = spec('count');
    expect(await store.apply(t0, [add(count, 'k')])).toEqual([1]);
    expect(await store.apply(t0 + 30 * minute, [add(count, 'k')])).toEqual([2]);
    expect(await store.apply(t0 + 30 * minute, [read(count, 'other')])).toEqual([0]);
    // The first event (bucket 0) counts for the whole window and at most one bucket more...
    expect(await store.apply(t0 + hour + minute - 1, [read(count, 'k')])).toEqual([2]);
    // ...and is gone once its bucket leaves the window.
    expect(await store.apply(t0 + hour + minute, [read(count, 'k')])).toEqual([1]);
    expect(await store.apply(t0 + 30 * minute + hour + minute, [read(count, 'k')])).toEqual([0]);
  });

  it('keeps every key exact across its growing storage: 3,000 keys, freed rows reused', async () => {
    // Enough keys for the first block of rows to double several times and for more blocks after
    // it; every bucketed aggregation, compared with a plain list of events per key.
    const store = new MemoryCounterStore();
    const counters = (['count', 'sum', 'avg', 'min', 'max', 'last', 'first_seen'] as const).map((a) =>
      spec(a),
    );
    const events = new Map<string, { at: number; value: number }[]>();
    const expected = (aggregation: Aggregation, key: string, at: number) => {
      const bucket = Math.floor(at / minute);
      const live = (events.get(key) ?? []).filter((event) => Math.floor(event.at / minute) >= bucket - 60);
      const values = live.map((event) => event.value);
      if (aggregation === 'count') return live.length;
      if (aggregation === 'sum') return values.reduce((a, b) => a + b, 0);
      if (live.length === 0) return null;
      if (aggregation === 'avg') return values.reduce((a, b) => a + b, 0) / values.length;
      if (aggregation === 'min') return Math.min(...values);
      if (aggregation === 'max') return Math.max(...values);
      if (aggregation === 'last') return (live.at(-1) as { value: number }).value;
      return (at - Math.min(...live.map((event) => event.at))) / 1000;
    };
    let x = 11;
    const step = async (at: number, key: string) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const value = (x % 10_000) / 100;
      events.set(key, [...(events.get(key) ?? []), { at, value }]);
      const answers = await store.apply(
        at,
        counters.map((counter) => add(counter, key, value)),
      );
      expect(answers).toEqual(counters.map((counter) => expected(counter.aggregation, key, at)));
    };
    for (let index = 0; index < 3000; index++) await step(t0 + index, `k${index}`);
    // A second event for keys spread over all the rows, half an hour later.
    for (let index = 0; index < 3000; index += 7) await step(t0 + 30 * minute + index, `k${index}`);
    // Past every window: all keys are freed, and new keys take the freed rows, empty.
    for (let pass = 0; pass < 10 && store.keyCount() > 0; pass++) store.expire(t0 + 3 * hour);
    expect(store.keyCount()).toBe(0);
    events.clear();
    for (let index = 0; index < 3000; index += 3) await step(t0 + 3 * hour + index, `new-${index}`);
    expect(store.keyCount()).toBe(counters.length * 1000);
  });

  it('estimates distinct values with a sliding HyperLogLog of 1,024 registers', () => {
    expect(SlidingHyperLogLog.registers).toBe(1024);
  });

  it('frees idle keys after their window, incrementally', async () => {
    const store = new MemoryCounterStore();
    const count = spec('count');
    const distinct = spec('distinct');
    for (let index = 0; index < 500; index++)
      await store.apply(t0, [add(count, `k${index}`), add(distinct, `k${index}`, 'x')]);
    expect(store.keyCount()).toBe(1000);
    store.expire(t0 + 30 * minute);
    expect(store.keyCount()).toBe(1000);
    store.expire(t0 + hour + minute);
    expect(store.keyCount()).toBe(0);
    expect(await store.apply(t0 + hour + minute, [add(count, 'k1')])).toEqual([1]);
  });

  it('frees idle keys of last of strings after their window, incrementally', async () => {
    const store = new MemoryCounterStore();
    const last: CounterSpec = { ...spec('last', hour, 'last_string'), valueType: 'string' };
    for (let index = 0; index < 500; index++) await store.apply(t0, [add(last, `k${index}`, `v${index}`)]);
    await store.apply(t0 + 30 * minute, [add(last, 'k0', 'newer')]);
    expect(store.keyCount()).toBe(500);
    store.expire(t0 + hour + minute);
    // k0 was updated half an hour later, so it is still in its window.
    expect(store.keyCount()).toBe(1);
    expect(await store.apply(t0 + hour + minute, [read(last, 'k0'), read(last, 'k1')])).toEqual([
      'newer',
      null,
    ]);
    store.expire(t0 + 30 * minute + hour + minute);
    expect(store.keyCount()).toBe(0);
    await store.drop([last.id]);
  });

  it('starts a last counter afresh when its field is retyped between string and number', async () => {
    const store = new MemoryCounterStore();
    const numbers = spec('last', hour, 'last_retyped');
    const strings: CounterSpec = { ...numbers, valueType: 'string' };
    expect(await store.apply(t0, [add(strings, 'k', 'FR')])).toEqual(['FR']);
    expect(await store.apply(t0 + minute, [read(numbers, 'k')])).toEqual([null]);
    expect(await store.apply(t0 + minute, [add(numbers, 'k', 3)])).toEqual([3]);
    expect(await store.apply(t0 + 2 * minute, [read(strings, 'k')])).toEqual([null]);
  });

  it('releases the memory of a dropped counter', async () => {
    const store = new MemoryCounterStore();
    const count = spec('count');
    for (let index = 0; index < 100; index++) await store.apply(t0, [add(count, `k${index}`)]);
    expect(store.keyCount()).toBe(100);
    await store.drop([count.id]);
    expect(store.keyCount()).toBe(0);
  });

  it('answers synchronously through applyNow, as apply does', async () => {
    const store = new MemoryCounterStore();
    const sum = spec('sum');
    expect(store.applyNow(t0, [add(sum, 'k', 2)])).toEqual([2]);
    expect(await store.apply(t0, [add(sum, 'k', 3)])).toEqual([5]);
  });
});
