import {
  type CounterOperation,
  type CounterSpec,
  type CounterStore,
  MemoryCounterStore,
} from '@vigil/engine';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './breakers.js';
import { ComponentGuard } from './component-guard.js';
import { FaultInjector } from './faults.js';
import { ResilientCounterStore } from './resilient-counter-store.js';

const hour = 3_600_000;
const at = Date.parse('2026-11-24T12:00:00Z');

/** A feature counter of a tenant, with the id format of `counterIdOf`. */
function counter(
  tenant: string,
  name = 'logins_1h',
  aggregation: CounterSpec['aggregation'] = 'count',
): CounterSpec {
  return { id: `${tenant}\u0000${name}\u00001`, aggregation, windowMs: hour };
}

function count(spec: CounterSpec, key = 'u-1', update = true): CounterOperation {
  return { counter: spec, key, update, value: null };
}

/** The real in-memory store as the primary, counting the calls that reach it; `failing` makes it throw. */
class CountingStore implements CounterStore {
  readonly inner = new MemoryCounterStore();
  applied = 0;
  attempts = 0;
  failing = false;

  async apply(time: number, operations: readonly CounterOperation[]) {
    this.attempts++;
    if (this.failing) throw new Error('primary down');
    this.applied++;
    return this.inner.applyNow(time, operations);
  }

  async drop(ids: readonly string[]) {
    await this.inner.drop(ids);
  }

  /** The value the primary holds for one counter and key, without counting an event. */
  value(spec: CounterSpec, key = 'u-1'): number | null {
    return this.inner.applyNow(at + 1, [count(spec, key, false)])[0] ?? null;
  }
}

function setup(options: { maxQueued?: number } = {}) {
  let now = at;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const injector = new FaultInjector({ now: clock.now });
  const breaker = new CircuitBreaker('counter_store', {
    threshold: 0.5,
    samplingMs: 10_000,
    minimumRps: 1,
    halfOpenAfterMs: 5_000,
    probeTimeoutMs: 1_000,
    now: clock.now,
  });
  const primary = new CountingStore();
  const dropped: string[] = [];
  const store = new ResilientCounterStore({
    primary,
    guard: new ComponentGuard('counter_store', injector, breaker),
    replayIntervalMs: 0,
    onDropped: (tenant) => dropped.push(tenant),
    now: clock.now,
    ...options,
  });
  return { store, primary, injector, breaker, clock, dropped };
}

describe('resilient counter store', () => {
  it('answers from the primary store while it works', async () => {
    const { store, primary } = setup();
    const spec = counter('t_a');
    expect(await store.apply(at, [count(spec)])).toEqual([1]);
    const results = await store.apply(at, [count(spec)]);
    expect(results).toEqual([2]);
    expect(results.degraded).toBeUndefined();
    expect(primary.applied).toBe(2);
  });

  it('counts locally, marked degraded, for the tenant whose store calls fail; others stay on the primary', async () => {
    const { store, primary, injector } = setup();
    const a = counter('t_a');
    const b = counter('t_b');
    await store.apply(at, [count(a)]);
    await store.apply(at, [count(b)]);
    injector.add({ component: 'counter_store', kind: 'outage', tenant: 't_a', duration_seconds: 60 });
    const local = await store.apply(at, [count(a)]);
    expect(local.degraded).toBe(true);
    // The local store knows only what it counted since the failure.
    expect([...local]).toEqual([1]);
    expect([...(await store.apply(at, [count(a)]))]).toEqual([2]);
    const other = await store.apply(at, [count(b)]);
    expect(other.degraded).toBeUndefined();
    expect([...other]).toEqual([2]);
    expect(primary.value(a)).toBe(1);
    expect(store.degradedTenants).toEqual(['t_a']);
    expect(store.queued).toBe(2);
  });

  it('replays the queued updates into the recovered primary exactly once, then answers from it again', async () => {
    const { store, primary, injector } = setup();
    const a = counter('t_a');
    const sum: CounterSpec = { id: 't_a\u0000amount_1h\u00001', aggregation: 'sum', windowMs: hour };
    await store.apply(at, [count(a)]);
    const fault = injector.add({
      component: 'counter_store',
      kind: 'error',
      tenant: 't_a',
      duration_seconds: 60,
    });
    for (let index = 0; index < 3; index++) {
      const results = await store.apply(at + index, [
        count(a),
        { counter: sum, key: 'u-1', update: true, value: 10 },
        // A read-only operation is not replayed.
        count(counter('t_a', 'other_1h'), 'u-1', false),
      ]);
      expect(results.degraded).toBe(true);
    }
    // While the fault lasts, a replay attempt leaves everything queued.
    await store.replay();
    expect(store.queued).toBe(3);
    expect(primary.value(a)).toBe(1);
    injector.remove(fault.id);
    await store.replay();
    expect(store.queued).toBe(0);
    expect(store.degradedTenants).toEqual([]);
    expect(primary.value(a)).toBe(4);
    expect(primary.value(sum)).toBe(30);
    // A second replay finds nothing to deliver again.
    await store.replay();
    expect(primary.value(a)).toBe(4);
    const next = await store.apply(at + 10, [count(a)]);
    expect(next.degraded).toBeUndefined();
    expect([...next]).toEqual([5]);
  });

  it('replays on a later call by itself once the primary is back', async () => {
    const { store, primary, injector } = setup();
    const a = counter('t_a');
    const fault = injector.add({
      component: 'counter_store',
      kind: 'outage',
      tenant: 't_a',
      duration_seconds: 60,
    });
    await store.apply(at, [count(a)]);
    await store.apply(at, [count(a)]);
    injector.remove(fault.id);
    // This call is still answered locally (the tenant's order is kept) and starts the replay.
    const during = await store.apply(at, [count(a)]);
    expect(during.degraded).toBe(true);
    for (let attempt = 0; attempt < 100 && store.queued > 0; attempt++) await store.replay();
    expect(store.queued).toBe(0);
    expect(primary.value(a)).toBe(3);
    expect((await store.apply(at, [count(a)])).degraded).toBeUndefined();
  });

  it('falls back when the primary itself fails, opens the breaker, and stops calling the primary while open', async () => {
    const { store, primary, breaker, clock } = setup();
    const specs = ['t_a', 't_b', 't_c'].map((tenant) => counter(tenant));
    primary.failing = true;
    for (let index = 0; index < 12; index++) {
      const results = await store.apply(at, [count(specs[index % 3] as CounterSpec)]);
      expect(results.degraded).toBe(true);
      // Each tenant counting locally tries its backlog again on a replay, which fails.
      await store.replay();
    }
    expect(breaker.state).toBe('open');
    const attempts = primary.attempts;
    primary.failing = false;
    await store.apply(at, [count(specs[0] as CounterSpec)]);
    await store.replay();
    expect(primary.attempts).toBe(attempts);
    expect(primary.applied).toBe(0);
    expect(store.queued).toBe(13);
    clock.advance(5_000);
    await store.replay();
    expect(breaker.state).toBe('closed');
    expect(store.queued).toBe(0);
    expect(specs.map((spec) => primary.value(spec))).toEqual([5, 4, 4]);
    expect(primary.applied).toBe(13);
  });

  it('bounds the queue: past the cap the oldest events of the tenant are dropped and reported', async () => {
    const { store, primary, injector, dropped } = setup({ maxQueued: 3 });
    const a = counter('t_a');
    const fault = injector.add({
      component: 'counter_store',
      kind: 'outage',
      tenant: 't_a',
      duration_seconds: 60,
    });
    for (let index = 0; index < 5; index++) await store.apply(at, [count(a)]);
    expect(store.queued).toBe(3);
    expect(store.dropped).toBe(2);
    expect(dropped).toEqual(['t_a', 't_a']);
    injector.remove(fault.id);
    await store.replay();
    expect(primary.value(a)).toBe(3);
  });

  it('does not bring a dropped counter back into the primary on replay', async () => {
    const { store, primary, injector } = setup();
    const kept = counter('t_a', 'kept_1h');
    const removed = counter('t_a', 'removed_1h');
    const fault = injector.add({
      component: 'counter_store',
      kind: 'outage',
      tenant: 't_a',
      duration_seconds: 60,
    });
    await store.apply(at, [count(kept), count(removed)]);
    injector.remove(fault.id);
    await store.drop([removed.id]);
    await store.replay();
    expect(primary.value(kept)).toBe(1);
    expect(primary.value(removed)).toBe(0);
  });
});
