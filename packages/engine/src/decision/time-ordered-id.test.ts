import { describe, expect, it } from 'vitest';
import { timeOrderedId } from './time-ordered-id.js';

describe('timeOrderedId', () => {
  it('is a version 7 UUID whose first 48 bits are the time in ms', () => {
    const id = timeOrderedId(Date.UTC(2026, 10, 25, 12, 0, 0, 123));
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(Date.UTC(2026, 10, 25, 12, 0, 0, 123));
  });

  it('sorts later ids after earlier ones, and never repeats', () => {
    const ids = Array.from({ length: 5000 }, (_, index) =>
      timeOrderedId(1_700_000_000_000 + Math.floor(index / 10)),
    );
    expect(new Set(ids).size).toBe(ids.length);
    for (let index = 10; index < ids.length; index += 10) {
      expect((ids[index - 1] as string) < (ids[index] as string)).toBe(true);
    }
  });
});
