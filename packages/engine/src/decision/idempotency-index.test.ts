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
