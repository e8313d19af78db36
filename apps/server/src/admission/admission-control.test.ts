import type { TenantRecord } from '@vigil/engine';
import { describe, expect, it } from 'vitest';
import { AdaptiveLimit } from './adaptive-limit.js';
import { Admission, AdmissionControl, type QuotaDefaults, type TenantQuota } from './admission-control.js';
import { LagShedder } from './event-loop-lag.js';

function tenantRecord(id: string, changes: Partial<TenantRecord> = {}): TenantRecord {
  return {
    id,
    name: id,
    rateLimit: null,
    maxConcurrency: null,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
    ...changes,
  };
}

/** Admission over an in-memory tenant table, a fixed node limit and a fake clock (ms). */
function setup(options: { limit?: number; defaults?: Partial<QuotaDefaults> } = {}) {
  const records = new Map<string, TenantRecord>();
  const clock = { now: 0 };
  const limit = options.limit ?? 1000;
  const control = new AdmissionControl(
    { tenant: (id) => records.get(id) },
    { rps: 0, burst: 0, maxConcurrency: 1000, ...options.defaults },
    new AdaptiveLimit({ min: limit, max: limit }),
    () => clock.now,
  );
  const put = (id: string, changes: Partial<TenantRecord> = {}) => records.set(id, tenantRecord(id, changes));
  /** Admits `count` requests of one token each; returns every outcome. */
  const admitMany = (quota: TenantQuota, count: number, tokens = 1) =>
    Array.from({ length: count }, () => control.admit(quota, tokens));
  return { control, records, clock, put, admitMany };
}

describe('AdmissionControl: token bucket', () => {
  it('admits a burst, then refuses with a Retry-After from the refill time, then refills lazily', () => {
    const { control, clock, put, admitMany } = setup();
    put('a', { rateLimit: { rps: 2, burst: 4 } });
    const a = control.quota('a');
    expect(admitMany(a, 5)).toEqual([0, 0, 0, 0, Admission.rateLimited]);
    expect(a.retryAfterSeconds).toBe(1);
    clock.now += 499;
    expect(control.admit(a, 1)).toBe(Admission.rateLimited);
    clock.now += 1;
    expect(control.admit(a, 1)).toBe(Admission.admitted);
    clock.now += 10_000; // refills to the burst, no further
    expect(admitMany(a, 5)).toEqual([0, 0, 0, 0, Admission.rateLimited]);
  });

  it('rounds Retry-After up to whole seconds, at least 1', () => {
    const { control, put } = setup();
    put('a', { rateLimit: { rps: 1, burst: 10 } });
    const a = control.quota('a');
    expect(control.admit(a, 0)).toBe(Admission.admitted);
    expect(control.charge(a, 10)).toBe(true);
    expect(control.admit(a, 1)).toBe(Admission.rateLimited);
    expect(a.retryAfterSeconds).toBe(1);
    expect(control.charge(a, 3)).toBe(false);
    expect(a.retryAfterSeconds).toBe(3);
  });

  it('lets a batch larger than the bucket through a full bucket, into debt that later requests wait for', () => {
    const { control, clock, put } = setup();
    put('a', { rateLimit: { rps: 10, burst: 20 } });
    const a = control.quota('a');
    expect(control.admit(a, 0)).toBe(Admission.admitted);
    expect(control.charge(a, 100)).toBe(true);
    expect(control.admit(a, 1)).toBe(Admission.rateLimited);
    // 80 tokens of debt and one needed: 8.1 s at 10/s.
    expect(a.retryAfterSeconds).toBe(9);
    clock.now += 8_100;
    expect(control.admit(a, 1)).toBe(Admission.admitted);
  });

  it('takes no tokens for a refused request', () => {
    const { control, put, admitMany } = setup();
    put('a', { rateLimit: { rps: 1, burst: 3 }, maxConcurrency: 1 });
    const a = control.quota('a');
    expect(control.admit(a, 1)).toBe(Admission.admitted);
    expect(admitMany(a, 5)).toEqual(Array(5).fill(Admission.tooManyConcurrent));
    control.release(a);
    expect(control.admit(a, 1)).toBe(Admission.admitted);
    control.release(a);
    expect(control.admit(a, 1)).toBe(Admission.admitted);
    control.release(a);
    expect(control.admit(a, 1)).toBe(Admission.rateLimited);
  });

  it('applies a changed quota to the next request', () => {
    const { control, put, admitMany } = setup();
    put('a', { rateLimit: { rps: 1, burst: 1 } });
    const a = control.quota('a');
    expect(admitMany(a, 2)).toEqual([0, Admission.rateLimited]);
    put('a', { rateLimit: { rps: 1000, burst: 1000 } });
    // The bucket keeps its level; the new rate refills it from then on.
    expect(control.admit(a, 1)).toBe(Admission.rateLimited);
    put('a', { rateLimit: null });
    expect(admitMany(a, 50).every((outcome) => outcome === Admission.admitted)).toBe(true);
  });

  it('uses the node defaults for a tenant without its own quota: no rate limit at rps 0, burst = rps at 0', () => {
    const unlimited = setup();
    unlimited.put('a');
    const a = unlimited.control.quota('a');
    expect(unlimited.admitMany(a, 500).every((outcome) => outcome === Admission.admitted)).toBe(true);

    const limited = setup({ defaults: { rps: 3, burst: 0 } });
    limited.put('b');
    expect(limited.admitMany(limited.control.quota('b'), 4)).toEqual([0, 0, 0, Admission.rateLimited]);

    const withBurst = setup({ defaults: { rps: 3, burst: 5 } });
    withBurst.put('c');
    expect(withBurst.admitMany(withBurst.control.quota('c'), 6)).toEqual([
      0,
      0,
      0,
      0,
      0,
      Admission.rateLimited,
    ]);
  });
});

describe('AdmissionControl: concurrency', () => {
  it('holds a tenant to its max_concurrency, or to the node default, until slots are released', () => {
    const { control, put, admitMany } = setup({ defaults: { maxConcurrency: 3 } });
    put('a', { maxConcurrency: 2 });
    put('b');
    const a = control.quota('a');
    const b = control.quota('b');
    expect(admitMany(a, 3)).toEqual([0, 0, Admission.tooManyConcurrent]);
    expect(admitMany(b, 4)).toEqual([0, 0, 0, Admission.tooManyConcurrent]);
    control.release(a);
    expect(control.admit(a, 1)).toBe(Admission.admitted);
    expect(control.inflight).toBe(5);
  });

  it('sheds every tenant at the node limit and admits again as slots are released', () => {
    const { control, put, admitMany } = setup({ limit: 4 });
    put('a');
    put('b');
    const a = control.quota('a');
    const b = control.quota('b');
    expect(admitMany(a, 2)).toEqual([0, 0]);
    expect(admitMany(b, 2)).toEqual([0, 0]);
    expect(control.admit(a, 1)).toBe(Admission.overloaded);
    expect(control.admit(b, 1)).toBe(Admission.overloaded);
    control.release(b);
    expect(control.admit(a, 1)).toBe(Admission.admitted);
  });

  it('sheds while the event loop runs late, before any slot is taken, and admits once it is on time', () => {
    const lag = { lagMs: 0 };
    const control = new AdmissionControl(
      { tenant: () => undefined },
      { rps: 0, burst: 0, maxConcurrency: 1000 },
      new AdaptiveLimit({ min: 1000, max: 1000 }),
      () => 0,
      new LagShedder(lag, 20, Math.random, 1),
    );
    const quota = control.quota('a');
    expect(control.admit(quota, 1)).toBe(Admission.admitted);
    lag.lagMs = 45;
    expect(control.admit(quota, 1)).toBe(Admission.overloaded);
    expect(control.inflight).toBe(1);
    lag.lagMs = 5;
    expect(control.admit(quota, 1)).toBe(Admission.admitted);
  });

  it('above 80 % of the limit, sheds a tenant over its fair share before a quiet one', () => {
    const { control, put, admitMany } = setup({ limit: 10 });
    put('flood');
    put('quiet');
    const flood = control.quota('flood');
    const quiet = control.quota('quiet');
    expect(admitMany(flood, 8)).toEqual(Array(8).fill(Admission.admitted));
    // Alone, its share is 10 / (1 + 1): at 8 in flight and the node at 80 %, it is shed...
    expect(control.admit(flood, 1)).toBe(Admission.overloaded);
    // ...while the quiet tenant still gets the reserved slots, up to its own share (10 / 3).
    expect(admitMany(quiet, 3)).toEqual([0, 0, Admission.overloaded]);
    expect(control.activeTenants).toBe(2);
  });

  it('lets a tenant alone use the whole limit below the shared part', () => {
    const { control, put, admitMany } = setup({ limit: 100 });
    put('a');
    expect(admitMany(control.quota('a'), 80).every((outcome) => outcome === Admission.admitted)).toBe(true);
  });

  it('forgets a deleted tenant, and in-flight requests still release into the right counts', () => {
    const { control, put, records } = setup();
    put('a');
    const a = control.quota('a');
    expect(control.admit(a, 1)).toBe(Admission.admitted);
    records.delete('a');
    control.forget('a');
    expect(control.trackedTenants).toBe(0);
    control.release(a);
    expect(control.inflight).toBe(0);
    expect(control.activeTenants).toBe(0);
  });

  it("reads a tenant's overload fallback verdict", () => {
    const { control, put } = setup();
    put('open', { overloadFallback: { verdict: 'accept' } });
    put('closed', { overloadFallback: null });
    put('old');
    expect(control.fallbackVerdict(control.quota('open'))).toBe('accept');
    expect(control.fallbackVerdict(control.quota('closed'))).toBeNull();
    expect(control.fallbackVerdict(control.quota('old'))).toBeNull();
  });
});
