import { describe, expect, it } from 'vitest';
import { EventFilter } from './event-filter.js';

describe('EventFilter', () => {
  it('never forgets an added key within a period, and rarely claims an unknown one', () => {
    const filter = new EventFilter(1 << 20);
    for (let index = 0; index < 20_000; index += 1) filter.add(`t\u0000evt-${index}`);
    for (let index = 0; index < 20_000; index += 1)
      expect(filter.mightContain(`t\u0000evt-${index}`)).toBe(true);
    let falsePositives = 0;
    for (let index = 0; index < 20_000; index += 1)
      if (filter.mightContain(`t\u0000other-${index}`)) falsePositives += 1;
    expect(falsePositives).toBeLessThan(200);
  });

  it('keeps a key for at least one period and drops it after two', () => {
    let now = 0;
    const filter = new EventFilter(1 << 16, 1000, () => now);
    filter.add('k');
    now = 1500;
    expect(filter.mightContain('k')).toBe(true);
    now = 2600;
    expect(filter.mightContain('k')).toBe(false);
  });
});
