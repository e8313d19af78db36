import { randomUUID } from 'node:crypto';
import type { TenantRecord } from '@vigil/engine';
import { createRedisClient, RedisRateLimiter, whenReady } from '@vigil/store-redis';
import { afterAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../resilience/breakers.js';
import { ComponentGuard } from '../resilience/component-guard.js';
import { FaultInjector } from '../resilience/faults.js';
import { AdaptiveLimit } from './adaptive-limit.js';
import { Admission, AdmissionControl } from './admission-control.js';
import { LeaseMode, type RateLeaseSource, SharedRateLimit } from './shared-rate-limit.js';

/** The shared Redis of the test machine; every test uses a key prefix of its own and deletes it. */
const sharedUrl = process.env.VIGIL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const run = randomUUID().slice(0, 8);
let opened = 0;
const client = createRedisClient(sharedUrl, { commandTimeoutMs: 2000 });

afterAll(async () => {
  const keys = await client.keys(`vigil-test:${run}:*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
});

const tenant: TenantRecord = {
  id: 't1',
  name: 'acme',
  rateLimit: { rps: 100, burst: 100 },
  maxConcurrency: null,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
};

/** One node's admission with a shared rate limit from `source`, on the test's clock. */
function node(source: RateLeaseSource, clock: { now: number }, guard?: ComponentGuard) {
  const shared = new SharedRateLimit({ source, now: () => clock.now, ...(guard !== undefined && { guard }) });
  const control = new AdmissionControl(
    { tenant: (id) => (id === tenant.id ? tenant : undefined) },
    { rps: 0, burst: 0, maxConcurrency: 10_000 },
    new AdaptiveLimit({ min: 10_000, max: 10_000 }),
    () => clock.now,
    undefined,
    shared,
  );
  const quota = control.quota(tenant.id);
  /**
   * Offers `count` single requests at once (no wait between); returns how many were admitted at
   * once. Those that wait for a lease are counted in `late` when it arrives.
   */
  const late = { admitted: 0 };
  const offer = (count: number) => {
    let admitted = 0;
    for (let index = 0; index < count; index++) {
      const outcome = control.admit(quota, 1);
      if (outcome === Admission.admitted) {
        admitted++;
        control.release(quota);
      } else if (typeof outcome === 'object') {
        void outcome.then((value) => {
          if (value !== Admission.admitted) return;
          late.admitted++;
          control.release(quota);
        });
      }
    }
    return admitted;
  };
  return { control, shared, quota, offer, late };
}

/** Two nodes on one fresh Redis bucket; the limiter's clock is the test clock too. */
async function twoNodes() {
  await whenReady(client);
  const clock = { now: 1_800_000_000_000 };
  const keyPrefix = `vigil-test:${run}:${opened++}:`;
  const limiter = () => new RedisRateLimiter(client, { keyPrefix, now: () => clock.now });
  return { clock, a: node(limiter(), clock), b: node(limiter(), clock) };
}

describe('SharedRateLimit on Redis', () => {
  it('holds the tenant’s rate across two nodes: together they admit about burst + rate × time', async () => {
    const { clock, a, b } = await twoNodes();
    const admitted = { a: 0, b: 0 };
    // 2 s in 10 ms steps, 5 requests per node per step: 1,000/s offered against a rate of 100/s.
    for (let step = 0; step < 200; step++) {
      admitted.a += a.offer(5);
      admitted.b += b.offer(5);
      await Promise.all([a.shared.settled(), b.shared.settled()]);
      clock.now += 10;
    }
    const total = admitted.a + admitted.b + a.late.admitted + b.late.admitted;
    // The bucket gives burst 100 + 199 tokens refilled over 1,990 ms. At most each node's first
    // batch of credit (5) comes on top; at most what the nodes hold unspent (2 batches each) and
    // the refill of their last 50 ms wait is missing. A per-node limit would admit about 600.
    expect(total).toBeGreaterThanOrEqual(299 - 2 * 10 - 2 * 5);
    expect(total).toBeLessThanOrEqual(299 + 2 * 5);
    expect(admitted.a + a.late.admitted).toBeGreaterThan(50);
    expect(admitted.b + b.late.admitted).toBeGreaterThan(50);
    expect(a.quota.leaseMode).toBe(LeaseMode.leased);
  });

  it('admits a cold burst on one batch of credit per node at once, the rest after one lease, never past the bucket', async () => {
    const { a, b } = await twoNodes();
    // The clock stands still: the bucket holds its burst of 100 and nothing more.
    expect(a.shared.batchOf(100, 100)).toBe(5);
    expect(a.offer(30)).toBe(5);
    expect(b.offer(30)).toBe(5);
    await Promise.all([a.shared.settled(), b.shared.settled()]);
    // Those that waited got in: 60 of the bucket's 100.
    expect(a.late.admitted + b.late.admitted).toBe(50);
    let total = 60;
    for (let round = 0; round < 20; round++) {
      total += a.offer(7) + b.offer(7);
      await Promise.all([a.shared.settled(), b.shared.settled()]);
    }
    total += a.late.admitted + b.late.admitted - 50;
    expect(total).toBe(100);
    // What the nodes hold unspent is what the bucket gave and they did not admit.
    expect(a.quota.lease + b.quota.lease).toBe(0);
  });

  it('refuses with a Retry-After once the shared bucket is dry; a batch larger than the share waits for its tokens', async () => {
    const { clock, a } = await twoNodes();
    a.offer(150);
    await a.shared.settled();
    expect(a.late.admitted + 5).toBe(100);
    // Dry, and no time for a refill: refused at once, without a round trip.
    expect(a.control.admit(a.quota, 1)).toBe(Admission.rateLimited);
    expect(a.quota.retryAfterSeconds).toBe(1);
    clock.now += 1000;
    // A batch of 50 events: one slot, then its tokens, more than the share holds: it waits for them.
    // The share is empty: the slot waits for a lease (a refill of about 100 tokens).
    expect(await a.control.admit(a.quota, 0)).toBe(Admission.admitted);
    expect(a.control.charge(a.quota, 5)).toBe(true);
    const charged = a.control.charge(a.quota, 50);
    expect(charged).toBeInstanceOf(Promise);
    expect(await charged).toBe(true);
    // 100 had refilled: the next batch of 50 is refused, with a Retry-After.
    expect(await a.control.charge(a.quota, 50)).toBe(false);
    expect(a.quota.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    a.control.release(a.quota);
  });
});

describe('SharedRateLimit when the shared bucket fails', () => {
  it('falls back to the node’s local bucket at the tenant’s full rate when Redis is unreachable', async () => {
    const dead = createRedisClient('redis://127.0.0.1:1', { connectTimeoutMs: 100 });
    dead.on('error', () => {});
    try {
      const clock = { now: 1_000_000 };
      const nodes = [node(new RedisRateLimiter(dead), clock), node(new RedisRateLimiter(dead), clock)];
      for (const one of nodes) {
        let admitted = one.offer(1); // on credit, while the first lease is tried
        await one.shared.settled();
        expect(one.quota.leaseMode).toBe(LeaseMode.local);
        admitted += one.offer(300);
        // Each node alone: its burst (plus the one admitted on credit), nothing refused with a 5xx.
        expect(admitted).toBe(101);
      }
    } finally {
      dead.disconnect();
    }
  });

  it('tries the shared bucket again after a while and goes back to leases once it answers', async () => {
    const clock = { now: 1_000_000 };
    let failing = true;
    let calls = 0;
    const source: RateLeaseSource = {
      take: async (_tenant, _rps, _burst, want) => {
        calls++;
        if (failing) throw new Error('connect ECONNREFUSED');
        return { granted: want, remaining: 50 };
      },
    };
    const one = node(source, clock);
    one.offer(1);
    await one.shared.settled();
    expect(one.quota.leaseMode).toBe(LeaseMode.local);
    one.offer(10);
    await one.shared.settled();
    expect(calls).toBe(1); // no retry before a second has passed
    failing = false;
    clock.now += 1000;
    one.offer(1);
    await one.shared.settled();
    expect(calls).toBe(2);
    expect(one.quota.leaseMode).toBe(LeaseMode.leased);
    expect(one.offer(5)).toBe(5);
  });

  it('goes through the component guard: an injected outage is a fallback, and the source is not called', async () => {
    const clock = { now: 1_000_000 };
    const injector = new FaultInjector({ now: () => clock.now });
    const guard = new ComponentGuard('counter_store', injector, new CircuitBreaker('counter_store'));
    injector.add({ component: 'counter_store', kind: 'outage', duration_seconds: 60 });
    let calls = 0;
    const source: RateLeaseSource = {
      take: async (_tenant, _rps, _burst, want) => {
        calls++;
        return { granted: want, remaining: 50 };
      },
    };
    const one = node(source, clock, guard);
    one.offer(1);
    await one.shared.settled();
    expect(one.quota.leaseMode).toBe(LeaseMode.local);
    expect(calls).toBe(0);
    expect(one.offer(200)).toBe(100);
  });
});
