import { type IdempotencyStore, MemoryIdempotencyStore } from '@vigil/engine';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './breakers.js';
import { ComponentGuard } from './component-guard.js';
import { FaultInjector } from './faults.js';
import { GuardedIdempotencyStore } from './guarded-idempotency-store.js';

/** A store that counts its calls and fails while `failing`. */
function flakyStore() {
  const inner = new MemoryIdempotencyStore();
  const state = { failing: false, calls: 0 };
  const store: IdempotencyStore = {
    claim: (...args) => {
      state.calls++;
      return state.failing ? Promise.reject(new Error('ECONNREFUSED')) : inner.claim(...args);
    },
    complete: (...args) => {
      state.calls++;
      return state.failing ? Promise.reject(new Error('ECONNREFUSED')) : inner.complete(...args);
    },
    release: (...args) => {
      state.calls++;
      return state.failing ? Promise.reject(new Error('ECONNREFUSED')) : inner.release(...args);
    },
  };
  return { store, state };
}

function setUp() {
  let clock = 1_000_000;
  const injector = new FaultInjector({ now: () => clock });
  const breaker = new CircuitBreaker('counter_store', { now: () => clock });
  const guard = new ComponentGuard('counter_store', injector, breaker);
  const lines: string[] = [];
  const logger = {
    debug: () => {},
    info: (_fields: object, message?: string) => lines.push(`info ${message}`),
    warn: (_fields: object, message?: string) => lines.push(`warn ${message}`),
    error: () => {},
  };
  const { store, state } = flakyStore();
  const guarded = new GuardedIdempotencyStore(store, guard, logger);
  return { guarded, state, injector, breaker, lines, advance: (ms: number) => (clock += ms) };
}

describe('GuardedIdempotencyStore', () => {
  it('passes calls through, and logs once when the store starts failing and once when it is back', async () => {
    const { guarded, state, lines } = setUp();
    expect(await guarded.claim('t1', 'decision', 'e1', 1000)).toEqual({ state: 'claimed' });
    state.failing = true;
    for (let i = 0; i < 3; i++)
      await expect(guarded.claim('t1', 'decision', `x${i}`, 1000)).rejects.toThrow();
    state.failing = false;
    expect(await guarded.claim('t1', 'decision', 'e1', 1000)).toEqual({ state: 'pending' });
    expect(lines).toEqual([
      'warn shared idempotency store unavailable; event ids are checked on this node and in the decision log',
      'info shared idempotency store answers again',
    ]);
  });

  it('opens the counter_store breaker on failures; then fails at once without calling the store', async () => {
    const { guarded, state, breaker } = setUp();
    state.failing = true;
    for (let i = 0; i < 30 && breaker.state === 'closed'; i++)
      await expect(guarded.claim('t1', 'decision', `e${i}`, 1000)).rejects.toThrow();
    expect(breaker.state).toBe('open');
    const calls = state.calls;
    await expect(guarded.complete('t1', 'decision', 'e1', null, 1000)).rejects.toMatchObject({
      code: 'component_unavailable',
    });
    expect(state.calls).toBe(calls);
  });

  it('fails the calls of a counter_store drill without calling the store', async () => {
    const { guarded, state, injector } = setUp();
    injector.add({ component: 'counter_store', kind: 'outage', tenant: 't1', duration_seconds: 60 });
    await expect(guarded.claim('t1', 'decision', 'e1', 1000)).rejects.toMatchObject({
      code: 'component_unavailable',
    });
    expect(state.calls).toBe(0);
    // Another tenant is not in the drill.
    expect(await guarded.claim('t2', 'decision', 'e1', 1000)).toEqual({ state: 'claimed' });
  });
});
