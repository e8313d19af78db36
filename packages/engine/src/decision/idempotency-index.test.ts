import { describe, expect, it } from 'vitest';
import { IdempotencyIndex } from './idempotency-index.js';

describe('IdempotencyIndex', () => {
  it('forgets entries after their time and beyond its size, oldest first', () => {
    let now = 0;
    const index = new IdempotencyIndex<string>(1000, 2, () => now);
    index.set('a', 'first');
    index.set('b', 'second');
    index.set('c', 'third');
    expect(index.get('a')).toBeUndefined();
    expect(index.get('b')).toBe('second');
    now = 1000;
    expect(index.get('c')).toBeUndefined();
  });

  it('replaces a present value in place, keeping its expiry and its place in line', () => {
    let now = 0;
    const index = new IdempotencyIndex<string>(1000, 2, () => now);
    index.set('a', 'pending');
    now = 500;
    index.set('b', 'other');
    index.update('a', 'answer');
    expect(index.get('a')).toBe('answer');
    // Still the oldest: the next entry pushes it out, not `b`.
    index.set('c', 'newest');
    expect(index.get('a')).toBeUndefined();
    expect(index.get('b')).toBe('other');
    // An absent key is not created by an update.
    index.update('z', 'nothing');
    expect(index.get('z')).toBeUndefined();
    now = 1500;
    expect(index.get('b')).toBeUndefined();
  });
});

describe('IdempotencyIndex eviction over a long run', () => {
  it('keeps exactly the newest entries through many inserts, re-sets and deletes', () => {
    let now = 0;
    const max = 1000;
    const index = new IdempotencyIndex<number>(1_000_000, max, () => now);
    // The model: keys in insertion order (a re-set key moves to the back), at most `max`.
    const model = new Map<string, number>();
    const put = (key: string, value: number) => {
      index.set(key, value);
      model.delete(key);
      model.set(key, value);
      while (model.size > max) model.delete(model.keys().next().value as string);
    };
    let x = 5;
    for (let step = 0; step < 50_000; step++) {
      now += 1;
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      if (x % 10 === 0 && model.size > 0) {
        // Set an existing key again, or delete one, from the older half.
        const keys = [...model.keys()];
        const key = keys[x % Math.ceil(keys.length / 2)] as string;
        if (x % 20 === 0) {
          index.delete(key);
          model.delete(key);
        } else put(key, step);
      } else put(`k${step}`, step);
    }
    expect(index.size).toBe(model.size);
    for (const [key, value] of model) expect(index.get(key)).toBe(value);
    expect(index.get('k0')).toBeUndefined();
  });

  it('still forgets by time when the oldest entries expire before the index is full', () => {
    let now = 0;
    const index = new IdempotencyIndex<number>(100, 1_000_000, () => now);
    for (let step = 0; step < 1000; step++) {
      now = step;
      index.set(`k${step}`, step);
    }
    // An entry lives 100 ms: those made at 899 or before have expired; inserts sweep them.
    expect(index.size).toBeLessThanOrEqual(101);
    expect(index.get('k900')).toBe(900);
    expect(index.get('k899')).toBeUndefined();
  });
});
