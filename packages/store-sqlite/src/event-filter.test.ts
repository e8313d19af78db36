import { describe, expect, it } from 'vitest';
import { EventFilter } from './event-filter.js';

function falsePositives(filter: EventFilter, count: number): number {
  let positives = 0;
  for (let index = 0; index < count; index += 1)
    if (filter.mightContain(`t\u0000other-${index}`)) positives += 1;
  return positives;
}

describe('EventFilter', () => {
  it('never forgets an added key within the horizon, and rarely claims an unknown one', () => {
    const filter = new EventFilter();
    for (let index = 0; index < 20_000; index += 1) filter.add(`t\u0000evt-${index}`);
    for (let index = 0; index < 20_000; index += 1)
      expect(filter.mightContain(`t\u0000evt-${index}`)).toBe(true);
    expect(falsePositives(filter, 20_000)).toBeLessThan(20);
  });

  it('grows with the volume instead of saturating: 64 times its first capacity stays under 1% false positives', () => {
    const filter = new EventFilter({ initialCapacity: 1024 });
    for (let index = 0; index < 65_536; index += 1) filter.add(`t\u0000evt-${index}`);
    for (let index = 0; index < 65_536; index += 1)
      expect(filter.mightContain(`t\u0000evt-${index}`)).toBe(true);
    // 1,024 + 2,048 + ... + 65,536: seven generations, the last one half full.
    expect(filter.size.generations).toBe(7);
    expect(falsePositives(filter, 50_000)).toBeLessThan(500);
  });

  it('keeps a key for at least the horizon and drops it within a slice after', () => {
    let now = 0;
    const filter = new EventFilter({ horizon: 1000, slice: 250, now: () => now });
    filter.add('k');
    now = 999;
    expect(filter.mightContain('k')).toBe(true);
    now = 1000;
    expect(filter.mightContain('k')).toBe(false);
    expect(filter.size.generations).toBe(0);
  });

  it('starts a generation per slice and drops each when its last key is a horizon old', () => {
    let now = 0;
    const filter = new EventFilter({ initialCapacity: 64, horizon: 1000, slice: 250, now: () => now });
    for (let step = 0; step < 8; step += 1) {
      now = step * 250;
      filter.add(`k-${step}`);
    }
    // Keys at 0, 250, ..., 1750: at 1750, those added after 750 are younger than the horizon.
    expect(filter.size.generations).toBe(4);
    for (let step = 0; step < 8; step += 1) expect(filter.mightContain(`k-${step}`)).toBe(step >= 4);
  });

  it('at its byte limit keeps every key in the newest generation rather than forgetting any', () => {
    const filter = new EventFilter({ initialCapacity: 1024, maxBytes: 4096 });
    for (let index = 0; index < 20_000; index += 1) filter.add(`t\u0000evt-${index}`);
    expect(filter.size.bytes).toBeLessThanOrEqual(4096);
    for (let index = 0; index < 20_000; index += 1)
      expect(filter.mightContain(`t\u0000evt-${index}`)).toBe(true);
  });
});
