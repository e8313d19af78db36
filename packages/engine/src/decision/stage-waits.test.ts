import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { StageOutcome, StageWaits } from './stage-waits.js';

const after = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('StageWaits', () => {
  it('tells done, failed and overrun apart, and never calls an overrun before its expiry', async () => {
    const waits = new StageWaits();
    const now = performance.now();
    const expiries = [now + 30, now + 10, now + 50, now + 20];
    const overruns = expiries.map(async (expiresAt) => {
      const outcome = await waits.wait(new Promise(() => {}), expiresAt);
      return { outcome, early: performance.now() < expiresAt };
    });
    const [done, failed, quick] = await Promise.all([
      waits.wait(after(5), now + 5000),
      waits.wait(Promise.reject(new Error('down')), now + 5000),
      waits.wait(Promise.resolve(), now - 1),
    ]);
    expect([done, failed, quick]).toEqual([StageOutcome.Done, StageOutcome.Failed, StageOutcome.Done]);
    for (const result of await Promise.all(overruns)) {
      expect(result).toEqual({ outcome: StageOutcome.Overrun, early: false });
    }
    expect(waits.pendingCount).toBe(0);
  });

  it('keeps the first outcome: a stage answering after its expiry stays overrun', async () => {
    const waits = new StageWaits();
    const late = after(40);
    expect(await waits.wait(late, performance.now() + 5)).toBe(StageOutcome.Overrun);
    await late;
    expect(waits.pendingCount).toBe(0);
  });

  it('settles many waits of mixed expiries, each by its own deadline or answer', async () => {
    const waits = new StageWaits();
    const now = performance.now();
    // Stages that answer within the turn, and stages that never answer, with expiries in any order.
    const cases = Array.from({ length: 200 }, (_, index) => {
      const answers = index % 3 === 0;
      const result = answers ? Promise.resolve() : new Promise<void>(() => {});
      return { answers, outcome: waits.wait(result, now + 5 + ((index * 7) % 11) * 3) };
    });
    for (const { answers, outcome } of cases) {
      expect(await outcome).toBe(answers ? StageOutcome.Done : StageOutcome.Overrun);
    }
    expect(waits.pendingCount).toBe(0);
  });
});
