import { describe, expect, it } from 'vitest';
import { AdaptiveLimit, type AdaptiveLimitOptions } from './adaptive-limit.js';

/** A limiter on a fake clock, fed one whole window of identical samples at a time. */
function limiter(options: Partial<AdaptiveLimitOptions> & { min: number; max: number }) {
  let now = 0;
  const limit = new AdaptiveLimit({ windowMs: 100, minWindowSamples: 10, ...options, now: () => now });
  return {
    limit,
    /** One window of samples; `inflight` defaults to the current limit (the node is saturated). */
    window(latencyMs: number, inflight = limit.limit): number {
      now += 100;
      for (let i = 0; i < 10; i++) limit.sample(latencyMs, inflight);
      return limit.limit;
    },
  };
}

describe('AdaptiveLimit', () => {
  it('starts at max, or at a given initial limit kept within min and max', () => {
    expect(new AdaptiveLimit({ min: 10, max: 500 }).limit).toBe(500);
    expect(new AdaptiveLimit({ min: 10, max: 500, initial: 100 }).limit).toBe(100);
    expect(new AdaptiveLimit({ min: 10, max: 500, initial: 5 }).limit).toBe(10);
    expect(new AdaptiveLimit({ min: 10, max: 500, initial: 900 }).limit).toBe(500);
  });

  it('refuses a min below 1 or above max', () => {
    expect(() => new AdaptiveLimit({ min: 0, max: 10 })).toThrow(RangeError);
    expect(() => new AdaptiveLimit({ min: 20, max: 10 })).toThrow(/min <= max/);
  });

  it('holds steady while latency is steady', () => {
    const l = limiter({ min: 10, max: 1000, initial: 400 });
    for (let i = 0; i < 30; i++) l.window(2);
    // Steady latency lets the limit grow slowly (by about √limit per window) up to max, never down.
    expect(l.limit.limit).toBeGreaterThanOrEqual(400);
  });

  it('shrinks step by step while latency rises, and never below min', () => {
    const l = limiter({ min: 20, max: 1000, initial: 800 });
    for (let i = 0; i < 20; i++) l.window(1);
    const before = l.limit.limit;
    const seen: number[] = [];
    for (let latency = 4; latency <= 400; latency *= 1.5) seen.push(l.window(latency));
    expect(seen[0]).toBeLessThan(before);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeLessThanOrEqual(seen[i - 1] as number);
    for (let i = 0; i < 200; i++) l.window(400 * 1.2 ** i);
    expect(l.limit.limit).toBe(20);
  });

  it('shrinks by at most about a tenth of the limit per window, whatever the latency', () => {
    const l = limiter({ min: 1, max: 1000 });
    for (let i = 0; i < 20; i++) l.window(1);
    const before = l.limit.limit;
    const after = l.window(10_000);
    expect(after).toBeLessThan(before);
    expect(after).toBeGreaterThanOrEqual(Math.floor(before * 0.9));
  });

  it('grows back once latency recovers, and never above max', () => {
    const l = limiter({ min: 16, max: 300, initial: 300 });
    for (let i = 0; i < 20; i++) l.window(1);
    for (let i = 0; i < 60; i++) l.window(20 + i * 5);
    const shrunk = l.limit.limit;
    expect(shrunk).toBeLessThan(100);
    const grown: number[] = [];
    for (let i = 0; i < 40; i++) grown.push(l.window(1));
    expect(grown.at(-1)).toBeGreaterThan(shrunk);
    for (let i = 1; i < grown.length; i++) expect(grown[i]).toBeGreaterThanOrEqual(grown[i - 1] as number);
    for (let i = 0; i < 500; i++) l.window(1);
    expect(l.limit.limit).toBe(300);
  });

  it('lets the long-term latency fall fast after a long overload, so recovery does not wait for it', () => {
    const l = limiter({ min: 8, max: 1000 });
    for (let i = 0; i < 300; i++) l.window(50);
    const longDuringOverload = l.limit.longRtt;
    expect(longDuringOverload).toBeGreaterThan(40);
    for (let i = 0; i < 50; i++) l.window(1);
    // A 600-window exponential average alone would still be above 40 ms after 50 windows of 1 ms.
    expect(l.limit.longRtt).toBeLessThan(longDuringOverload / 2);
  });

  it('changes nothing while less than half of the limit is in use', () => {
    const l = limiter({ min: 10, max: 1000, initial: 200 });
    for (let i = 0; i < 20; i++) l.window(1, 50);
    for (let i = 0; i < 20; i++) l.window(100, 50);
    expect(l.limit.limit).toBe(200);
  });

  it('updates only when a window has both enough samples and enough time', () => {
    let now = 0;
    const options = { min: 1, max: 100, windowMs: 100, minWindowSamples: 10, now: () => now };
    // Many samples but no time passing: no window closes.
    const busy = new AdaptiveLimit(options);
    for (let i = 0; i < 1000; i++) busy.sample(1000, 100);
    expect(busy.shortRtt).toBe(0);
    expect(busy.limit).toBe(100);
    // Time passes but too few samples: none either, until the tenth sample.
    const quiet = new AdaptiveLimit(options);
    now += 1000;
    for (let i = 0; i < 9; i++) quiet.sample(3, 100);
    expect(quiet.shortRtt).toBe(0);
    quiet.sample(3, 100);
    expect(quiet.shortRtt).toBe(3);
  });
});
