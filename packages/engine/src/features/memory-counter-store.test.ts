import { describe, expect, it } from 'vitest';
import type { Aggregation, CounterOperation, CounterSpec } from '../ports/counter-store.js';
import { MemoryCounterStore } from './memory-counter-store.js';
import { SlidingHyperLogLog } from './sliding-hyperloglog.js';

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

  it('slides over many buckets and restarts a key that was idle longer than the ring', async () => {
    const store = new MemoryCounterStore();
    const count = spec('count');
    for (let m = 0; m < 120; m++) await store.apply(t0 + m * minute, [add(count, 'k')]);
    // At minute 119: buckets 59..119 are in the window: 61 events.
    expect(await store.apply(t0 + 119 * minute, [read(count, 'k')])).toEqual([61]);
    expect(await store.apply(t0 + 500 * hour, [add(count, 'k')])).toEqual([1]);
  });

  it('computes sum, avg, min, max, last and first_seen', async () => {
    const store = new MemoryCounterStore();
    const [sum, avg, min, max, last, first] = (
      ['sum', 'avg', 'min', 'max', 'last', 'first_seen'] as const
    ).map((aggregation) => spec(aggregation)) as CounterSpec[];
    const all = (value: number) =>
      [sum, avg, min, max, last, first].map((counter) => add(counter as CounterSpec, 'k', value));
    await store.apply(t0, all(10));
    await store.apply(t0 + 10 * minute, all(-4));
    expect(await store.apply(t0 + 20 * minute, all(30))).toEqual([36, 12, -4, 30, 30, 1200]);
    // After the first event's bucket leaves: 26, 13, -4, 30, 30, first seen at +10 min.
    expect(
      await store.apply(
        t0 + hour + minute,
        all(0).map((op) => ({ ...op, update: false })),
      ),
    ).toEqual([26, 13, -4, 30, 30, 3060]);
    // Nothing in the window: no value (count and sum are 0).
    const later = t0 + 10 * hour;
    expect(
      await store.apply(
        later,
        [sum, avg, min, max, last, first].map((counter) => read(counter as CounterSpec, 'k')),
      ),
    ).toEqual([0, null, null, null, null, null]);
  });

  it('counts distinct values exactly, sliding', async () => {
    const store = new MemoryCounterStore();
    const distinct = spec('distinct');
    await store.apply(t0, [add(distinct, 'd', 'a')]);
    await store.apply(t0 + minute, [add(distinct, 'd', 'b')]);
    expect(await store.apply(t0 + 2 * minute, [add(distinct, 'd', 'a')])).toEqual([2]);
    // 'b' leaves the window; 'a' was seen again later.
    expect(await store.apply(t0 + hour + 2 * minute, [read(distinct, 'd')])).toEqual([1]);
  });

  it('estimates distinct values beyond the exact limit within 3 standard errors (≈10%)', async () => {
    const store = new MemoryCounterStore({ exactDistinctLimit: 100 });
    const distinct = spec('distinct');
    let value: (number | null)[] = [];
    for (let index = 0; index < 20_000; index++) {
      value = await store.apply(t0 + Math.floor(index / 1000) * minute, [add(distinct, 'd', `v-${index}`)]);
    }
    const estimate = value[0] as number;
    expect(Math.abs(estimate - 20_000) / 20_000).toBeLessThan(0.1);
    // Values of the first ten minutes leave the window: about half remain.
    const [later] = await store.apply(t0 + hour + 10 * minute, [read(distinct, 'd')]);
    expect(Math.abs((later as number) - 10_000) / 10_000).toBeLessThan(0.1);
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

  it('starts a dropped counter empty', async () => {
    const store = new MemoryCounterStore();
    const count = spec('count');
    await store.apply(t0, [add(count, 'k')]);
    await store.drop([count.id]);
    expect(await store.apply(t0, [read(count, 'k')])).toEqual([0]);
  });
});
