import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { EventLoopDelayMonitor } from './event-loop-delay.js';

describe('event-loop delay', () => {
  it('reports a blocked event loop in its maximum', async () => {
    const monitor = new EventLoopDelayMonitor({ resolutionMs: 5, periodMs: 60_000 });
    try {
      expect(monitor.delay()).toEqual({ p50: 0, p99: 0, max: 0 });
      await sleep(30);
      // Block the loop for 80 ms: a sample is held up by about that much.
      const until = performance.now() + 80;
      while (performance.now() < until) {
        // busy
      }
      await sleep(30);
      const delay = monitor.delay();
      expect(delay.max).toBeGreaterThanOrEqual(50);
      expect(delay.p50).toBeLessThanOrEqual(delay.p99);
      expect(delay.p99).toBeLessThanOrEqual(delay.max);
    } finally {
      monitor.close();
    }
  });
});
