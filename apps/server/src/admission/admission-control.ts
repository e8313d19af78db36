import type { TenantRecord } from '@vigil/engine';
import type { Verdict } from '@vigil/protocol';
import type { AdaptiveLimit } from './adaptive-limit.js';

/** Node defaults for tenants that have no quota of their own. */
export interface QuotaDefaults {
  /** Token-bucket refill per second; 0: no rate limit. */
  rps: number;
  /** Bucket size; 0: one second of `rps`. */
  burst: number;
  /** In-flight data-plane requests per tenant. */
  maxConcurrency: number;
}

/** What {@link AdmissionControl.admit} decided. */
export const Admission = {
  admitted: 0,
  rateLimited: 1,
  tooManyConcurrent: 2,
  overloaded: 3,
} as const;
export type Admission = (typeof Admission)[keyof typeof Admission];

/**
 * Share of the node limit any tenant may fill; the rest is kept for tenants holding less than
 * their fair share, so one flooding tenant is shed before a quiet one.
 */
export const sharedFraction = 0.8;

/**
 * One tenant's admission state: its token bucket and its requests in flight. A request holds a
 * reference to it until released, so the counts stay right even if the tenant is forgotten meanwhile.
 */
export class TenantQuota {
  /** Tokens in the bucket as of `refilledAt`; negative after a batch larger than the bucket. */
  tokens = Number.POSITIVE_INFINITY;
  refilledAt = 0;
  inflight = 0;
  /** Whole seconds until a rejected request could pass the bucket; set when one is refused. */
  retryAfterSeconds = 1;

  constructor(readonly tenantId: string) {}
}

/**
 * Admission of data-plane requests: a token bucket and a concurrency bulkhead per tenant, and the
 * node-wide adaptive concurrency limit with fair-share shedding. No timers: buckets refill lazily
 * when read. Not thread-safe by design: it lives on the event loop.
 */
export class AdmissionControl {
  readonly #quotas = new Map<string, TenantQuota>();
  #inflight = 0;
  /** Tenants with at least one request in flight. */
  #activeTenants = 0;

  constructor(
    private readonly tenants: { tenant(tenantId: string): TenantRecord | undefined },
    private readonly defaults: QuotaDefaults,
    readonly limiter: AdaptiveLimit,
    private readonly now: () => number = performance.now.bind(performance),
    /** Sheds while the event loop runs late (see `LagShedder`); none by default. */
    readonly lagShedder: { shouldShed(inflight: number): boolean } = { shouldShed: () => false },
  ) {}

  /** Requests admitted on this node and not yet released. */
  get inflight(): number {
    return this.#inflight;
  }

  /** The node's current concurrency limit. */
  get limit(): number {
    return this.limiter.limit;
  }

  /** Tenants with requests in flight. */
  get activeTenants(): number {
    return this.#activeTenants;
  }

  /** The tenant's admission state, created on first use. */
  quota(tenantId: string): TenantQuota {
    let quota = this.#quotas.get(tenantId);
    if (quota === undefined) {
      quota = new TenantQuota(tenantId);
      this.#quotas.set(tenantId, quota);
    }
    return quota;
  }

  /** Drops a deleted tenant's state; requests still in flight release into their own reference. */
  forget(tenantId: string): void {
    this.#quotas.delete(tenantId);
  }

  /** How many tenants have admission state (for tests and diagnostics). */
  get trackedTenants(): number {
    return this.#quotas.size;
  }

  /**
   * Decides on one request, in order: the tenant's token bucket (at least `min(tokens, burst)` and
   * at least one token must be there), its concurrency bulkhead, then the node limit. Admitted: the
   * tokens are taken (the bucket may go into debt for a batch larger than it) and a slot is held
   * until {@link release}. Refused: nothing is taken.
   */
  admit(quota: TenantQuota, tokens: number): Admission {
    const record = this.tenants.tenant(quota.tenantId);
    if (!this.#hasTokens(quota, record, tokens)) return Admission.rateLimited;
    if (quota.inflight >= (record?.maxConcurrency ?? this.defaults.maxConcurrency)) {
      return Admission.tooManyConcurrent;
    }
    const limit = this.limiter.limit;
    if (this.#inflight >= limit || this.lagShedder.shouldShed(this.#inflight)) return Admission.overloaded;
    // Above the shared part of the limit, only tenants under their fair share get in. The share is
    // counted with one tenant more than those in flight, so a tenant alone cannot fill the rest.
    if (this.#inflight >= limit * sharedFraction && quota.inflight >= limit / (this.#activeTenants + 1)) {
      return Admission.overloaded;
    }
    quota.tokens -= tokens;
    if (quota.inflight++ === 0) this.#activeTenants++;
    this.#inflight++;
    return Admission.admitted;
  }

  /**
   * Takes `tokens` more from an admitted request's bucket (a batch, once its size is known); false
   * if the bucket lacks them, with `retryAfterSeconds` set. The slot stays held until released.
   */
  charge(quota: TenantQuota, tokens: number): boolean {
    const record = this.tenants.tenant(quota.tenantId);
    if (!this.#hasTokens(quota, record, tokens)) return false;
    quota.tokens -= tokens;
    return true;
  }

  /** The verdict a tenant chose for its shed decision requests; null: it chose 503. */
  fallbackVerdict(quota: TenantQuota): Verdict | null {
    return this.tenants.tenant(quota.tenantId)?.overloadFallback?.verdict ?? null;
  }

  /** Gives back an admitted request's slot; call exactly once per admitted request. */
  release(quota: TenantQuota): void {
    if (--quota.inflight === 0) this.#activeTenants--;
    this.#inflight--;
  }

  /** Refills the bucket to now and checks it holds what a request of `tokens` needs. */
  #hasTokens(quota: TenantQuota, record: TenantRecord | undefined, tokens: number): boolean {
    const rps = record?.rateLimit?.rps ?? this.defaults.rps;
    if (rps <= 0) return true;
    const burst = record?.rateLimit?.burst ?? (this.defaults.burst > 0 ? this.defaults.burst : rps);
    const now = this.now();
    const refilled = quota.tokens + ((now - quota.refilledAt) * rps) / 1000;
    quota.tokens = Math.min(refilled, burst);
    quota.refilledAt = now;
    const needed = Math.max(1, Math.min(tokens, burst));
    if (quota.tokens >= needed) return true;
    quota.retryAfterSeconds = Math.max(1, Math.ceil((needed - quota.tokens) / rps));
    return false;
  }
}
