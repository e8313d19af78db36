import { describe, expect, it } from 'vitest';
import { EventLoopLag, LagShedder } from './event-loop-lag.js';

describe('EventLoopLag', () => {
  it('rises at once to a late tick and falls back over on-time ticks', () => {
    const lag = new EventLoopLag();
    lag.observe(60);
    expect(lag.lagMs).toBe(60);
    lag.observe(0);
    expect(lag.lagMs).toBeCloseTo(40);
    for (let tick = 0; tick < 20; tick++) lag.observe(0);
    expect(lag.lagMs).toBeLessThan(0.1);
  });

  it('measures a loop that is blocked', async () => {
    const lag = new EventLoopLag(5).start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const until = performance.now() + 60;
      while (performance.now() < until) {
        // Holds the loop, as a burst of requests would.
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(lag.lagMs).toBeGreaterThan(30);
    } finally {
      lag.stop();
    }
  });
});

describe('LagShedder', () => {
  const at = (lagMs: number, random = 0.5) => new LagShedder({ lagMs }, 20, () => random, 0);

  it('sheds nothing up to the threshold, everything from twice it, a growing share between', () => {
    expect(at(0).shouldShed(100)).toBe(false);
    expect(at(20).shouldShed(100)).toBe(false);
    expect(at(40, 0.999).shouldShed(100)).toBe(true);
    // At 25 ms a quarter is shed: a draw below 0.25 sheds, above does not.
    expect(at(25, 0.2).shouldShed(100)).toBe(true);
    expect(at(25, 0.3).shouldShed(100)).toBe(false);
  });

  it('sheds with requests in flight, or while requests keep coming; not the first few after a quiet spell', () => {
    let now = 0;
    const shedder = new LagShedder(
      { lagMs: 1000 },
      20,
      () => 0.5,
      8,
      () => now,
      100,
    );
    const ask = (count: number) => Array.from({ length: count }, () => shedder.shouldShed(0));
    expect(ask(7)).toEqual(Array(7).fill(false));
    expect(shedder.shouldShed(0)).toBe(true);
    // In the next window the last one's arrivals still count.
    now = 150;
    expect(shedder.shouldShed(0)).toBe(true);
    // After a quiet spell the count starts again: a loop late from the node's own work is not a queue.
    now = 1000;
    expect(ask(6)).toEqual(Array(6).fill(false));
    // ...unless requests are waiting in flight.
    expect(shedder.shouldShed(8)).toBe(true);
  });

  it('is off with a threshold of 0', () => {
    expect(new LagShedder({ lagMs: 1000 }, 0).shouldShed(100)).toBe(false);
  });
});
