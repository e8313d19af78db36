import { describe, expect, it } from 'vitest';
import { CircuitBreaker, normalCall, refused } from './breakers.js';
import { ComponentGuard } from './component-guard.js';
import { FaultInjector } from './faults.js';

/** A clock the test moves by hand: the breaker's open and half-open times follow it. */
function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const options = {
  threshold: 0.5,
  samplingMs: 10_000,
  minimumRps: 1,
  halfOpenAfterMs: 5_000,
  probeTimeoutMs: 1_000,
};

/** A dependency whose outcome the test sets, counting the calls that reach it. */
function dependency() {
  const state = { failing: false, calls: 0 };
  return {
    state,
    call: async () => {
      state.calls++;
      if (state.failing) throw new Error('dependency down');
      return 'ok';
    },
  };
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    return String(await promise);
  } catch (error) {
    return (error as Error).message;
  }
}

/** Drives a breaker to open with a burst of failures at sufficient volume. */
function trip(breaker: CircuitBreaker): void {
  for (let index = 0; index < 10; index++) breaker.failure(breaker.acquire(), new Error('down'));
}

describe('circuit breaker', () => {
  it('does not open on a single failure, nor on failures below the minimum call volume', () => {
    const breaker = new CircuitBreaker('counter_store', { ...options, now: manualClock().now });
    breaker.failure(breaker.acquire(), new Error('first error'));
    expect(breaker.state).toBe('closed');
    // Nine failures in a row are still under the volume of 1 call/s over 10 s.
    for (let index = 0; index < 8; index++) breaker.failure(breaker.acquire(), new Error('again'));
    expect(breaker.failures).toBe(9);
    expect(breaker.state).toBe('closed');
    expect(breaker.lastFailure?.message).toBe('again');
  });

  it('does not open when failures stay at or under the threshold share', () => {
    const breaker = new CircuitBreaker('list_store', { ...options, now: manualClock().now });
    for (let index = 0; index < 20; index++) {
      const ticket = breaker.acquire();
      if (index % 2 === 1) breaker.failure(ticket);
      else breaker.success(ticket);
    }
    expect(breaker.state).toBe('closed');
  });

  it('opens on a burst of failures above the threshold at sufficient volume', () => {
    const breaker = new CircuitBreaker('counter_store', { ...options, now: manualClock().now });
    for (let index = 0; index < 5; index++) breaker.success(breaker.acquire());
    for (let index = 0; index < 9; index++) breaker.failure(breaker.acquire(), new Error('down'));
    expect(breaker.state).toBe('open');
    expect(breaker.opened).toBe(1);
    expect(breaker.openedAt).not.toBeNull();
  });

  it('fails fast while open without calling the dependency', async () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker('counter_store', { ...options, now: clock.now });
    const guard = new ComponentGuard('counter_store', new FaultInjector(), breaker);
    const { state, call } = dependency();
    state.failing = true;
    for (let index = 0; index < 10; index++) await outcome(guard.run(null, call));
    expect(breaker.state).toBe('open');
    const callsWhenOpened = state.calls;
    state.failing = false;
    expect(await outcome(guard.run(null, call))).toBe('counter_store is unavailable: circuit breaker open');
    clock.advance(options.halfOpenAfterMs - 1);
    expect(await outcome(guard.run(null, call))).toMatch(/circuit breaker open/);
    expect(state.calls).toBe(callsWhenOpened);
    expect(breaker.rejected).toBe(2);
  });

  it('lets exactly one probe through after the half-open delay; its success closes the breaker', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker('config_store', { ...options, now: clock.now });
    trip(breaker);
    clock.advance(options.halfOpenAfterMs);
    const probe = breaker.acquire();
    expect(probe).toBeGreaterThan(0);
    expect(breaker.state).toBe('half_open');
    // Others fail fast while the probe is out.
    expect(breaker.acquire()).toBe(refused);
    expect(breaker.acquire()).toBe(refused);
    breaker.success(probe);
    expect(breaker.state).toBe('closed');
    expect(breaker.acquire()).toBe(normalCall);
    // Closing started a fresh sample: one failure right after does not re-open it.
    breaker.failure(normalCall);
    expect(breaker.state).toBe('closed');
  });

  it('re-opens when the probe fails, and probes again after another delay (not stuck half-open)', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker('decision_log', { ...options, now: clock.now });
    trip(breaker);
    clock.advance(options.halfOpenAfterMs);
    const probe = breaker.acquire();
    breaker.failure(probe, new Error('still down'));
    expect(breaker.state).toBe('open');
    expect(breaker.opened).toBe(2);
    expect(breaker.acquire()).toBe(refused);
    clock.advance(options.halfOpenAfterMs);
    const second = breaker.acquire();
    expect(second).toBeGreaterThan(probe);
    breaker.success(second);
    expect(breaker.state).toBe('closed');
  });

  it('counts a probe that never answers as failed, and ignores its late answer', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker('external_data', { ...options, now: clock.now });
    trip(breaker);
    clock.advance(options.halfOpenAfterMs);
    const hung = breaker.acquire();
    expect(breaker.state).toBe('half_open');
    clock.advance(options.probeTimeoutMs);
    expect(breaker.acquire()).toBe(refused);
    expect(breaker.state).toBe('open');
    expect(breaker.lastFailure?.message).toBe('probe did not answer in time');
    breaker.success(hung);
    expect(breaker.state).toBe('open');
    clock.advance(options.halfOpenAfterMs);
    const probe = breaker.acquire();
    expect(probe).toBeGreaterThan(hung);
    breaker.success(probe);
    expect(breaker.state).toBe('closed');
  });

  it('gives a probe slot back when the call never reached the dependency', () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker('list_store', { ...options, now: clock.now });
    trip(breaker);
    clock.advance(options.halfOpenAfterMs);
    const probe = breaker.acquire();
    breaker.release(probe);
    expect(breaker.state).toBe('open');
    const next = breaker.acquire();
    expect(next).toBeGreaterThan(probe);
    expect(breaker.state).toBe('half_open');
  });
});

describe('component guard', () => {
  it('probes through the guard: a recovered dependency closes the breaker, a failing one re-opens it', async () => {
    const clock = manualClock();
    const breaker = new CircuitBreaker('counter_store', { ...options, now: clock.now });
    const guard = new ComponentGuard('counter_store', new FaultInjector({ now: clock.now }), breaker);
    const { state, call } = dependency();
    state.failing = true;
    for (let index = 0; index < 10; index++) await outcome(guard.run(null, call));
    expect(breaker.state).toBe('open');
    clock.advance(options.halfOpenAfterMs);
    const calls = state.calls;
    expect(await outcome(guard.run(null, call))).toBe('dependency down');
    expect(state.calls).toBe(calls + 1);
    expect(breaker.state).toBe('open');
    clock.advance(options.halfOpenAfterMs);
    state.failing = false;
    expect(await outcome(guard.run(null, call))).toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('feeds global injected failures to the breaker but not those injected for one tenant', async () => {
    const clock = manualClock();
    const injector = new FaultInjector({ now: clock.now });
    const breaker = new CircuitBreaker('list_store', { ...options, now: clock.now });
    const guard = new ComponentGuard('list_store', injector, breaker);
    const { state, call } = dependency();
    injector.add({ component: 'list_store', kind: 'outage', tenant: 't_a', duration_seconds: 60 });
    for (let index = 0; index < 20; index++)
      expect(await outcome(guard.run('t_a', call))).toMatch(
        /list_store is unavailable: injected outage for tenant t_a/,
      );
    expect(state.calls).toBe(0);
    expect(breaker.state).toBe('closed');
    expect(await outcome(guard.run('t_b', call))).toBe('ok');
    injector.add({ component: 'list_store', kind: 'error', duration_seconds: 60 });
    // With the one success before, the ninth failure reaches the volume (10 calls in 10 s).
    for (let index = 0; index < 9; index++)
      expect(await outcome(guard.run('t_b', call))).toMatch(/injected error \(flt_/);
    expect(breaker.state).toBe('open');
    expect(await outcome(guard.run('t_b', call))).toMatch(/circuit breaker open/);
  });

  it('fails synchronous calls at once under an injected latency, and counts them', () => {
    const injector = new FaultInjector();
    const guard = new ComponentGuard('external_data', injector, new CircuitBreaker('external_data', options));
    expect(guard.quiet).toBe(true);
    injector.add({ component: 'external_data', kind: 'latency', latency_ms: 500, duration_seconds: 60 });
    expect(guard.quiet).toBe(false);
    expect(() => guard.enterSync('t_a')).toThrow(/external_data is unavailable: injected latency of 500 ms/);
    expect(guard.syncFailures).toBe(1);
  });

  it('waits out an injected latency, then calls the dependency', async () => {
    const injector = new FaultInjector();
    const guard = new ComponentGuard('config_store', injector, new CircuitBreaker('config_store', options));
    injector.add({ component: 'config_store', kind: 'latency', latency_ms: 20, duration_seconds: 60 });
    const { state, call } = dependency();
    const pending = guard.run(null, call);
    expect(state.calls).toBe(0);
    expect(await pending).toBe('ok');
    expect(state.calls).toBe(1);
  });
});
