import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RequestDurations } from './request-durations.js';

const buckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

describe('RequestDurations', () => {
  it("renders what prom-client's histogram renders for the same observations", async () => {
    const ours = new Registry();
    const durations = new RequestDurations(ours, buckets);
    const theirs = new Registry();
    const reference = new Histogram({
      name: 'vigil_http_request_duration_seconds',
      help: 'HTTP request latency by route; its _count gives the request rate.',
      labelNames: ['method', 'route', 'status'] as const,
      buckets,
      registers: [theirs],
    });
    const seen: [string, string, string, number][] = [];
    let x = 7;
    for (let index = 0; index < 500; index++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const seconds = (x % 100_000) / 10_000; // 0 .. 10 s, past the last bucket too
      const route = index % 3 === 0 ? '/v1/decisions' : index % 3 === 1 ? '/v1/events' : 'unmatched';
      const status = index % 7 === 0 ? '429' : '200';
      seen.push(['POST', route, status, seconds]);
    }
    // Bounds themselves belong to their bucket (le is "less or equal").
    seen.push(['GET', '/metrics', '200', 0.001], ['GET', '/metrics', '200', 5]);
    for (const [method, route, status, seconds] of seen) {
      durations.observe(method, route, status, seconds);
      reference.observe({ method, route, status }, seconds);
    }
    const lines = (text: string) => text.split('\n').sort();
    expect(lines(await ours.metrics())).toEqual(lines(await theirs.metrics()));
    // Not vacuous: every label set is there, with its count.
    expect(await ours.metrics()).toContain(
      'vigil_http_request_duration_seconds_count{method="GET",route="/metrics",status="200"} 2',
    );
  });

  it('starts empty again after a reset', async () => {
    const registry = new Registry();
    const durations = new RequestDurations(registry, buckets);
    durations.observe('POST', '/v1/decisions', '200', 0.002);
    expect(await registry.metrics()).toContain('_count{method="POST",route="/v1/decisions",status="200"} 1');
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('_count{');
  });
});
