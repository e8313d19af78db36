import { describe, expect, it } from 'vitest';
import { NodeMetrics } from './metrics.js';

describe('NodeMetrics', () => {
  it('counts decisions by tenant and verdict, cumulatively across scrapes', async () => {
    const metrics = new NodeMetrics(() => 0);
    metrics.decision('t-1', 'accept');
    metrics.decision('t-1', 'accept');
    metrics.decision('t-1', 'reject');
    metrics.decision('t-2', 'review');
    let text = await metrics.registry.metrics();
    expect(text).toContain('vigil_decisions_total{tenant="t-1",verdict="accept"} 2');
    expect(text).toContain('vigil_decisions_total{tenant="t-1",verdict="reject"} 1');
    expect(text).toContain('vigil_decisions_total{tenant="t-2",verdict="review"} 1');
    metrics.decision('t-1', 'accept');
    text = await metrics.registry.metrics();
    expect(text).toContain('vigil_decisions_total{tenant="t-1",verdict="accept"} 3');
    expect(text).toContain('vigil_decisions_total{tenant="t-1",verdict="reject"} 1');
    // A scrape with nothing new changes nothing.
    expect(await metrics.registry.metrics()).toContain(
      'vigil_decisions_total{tenant="t-1",verdict="accept"} 3',
    );
  });
});
