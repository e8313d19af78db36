import type { TenantRecord } from '@vigil/engine';
import type { Verdict } from '@vigil/protocol';
import type { AdaptiveLimit } from './adaptive-limit.js';
import { LeaseMode, type SharedRateLimit } from './shared-rate-limit.js';

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
 * What a token check found: none, enough in the local bucket, enough in the leased share, or the
 * tokens already taken from the leased share (after waiting for a lease).
 */
const Tokens = { none: 0, local: 1, leased: 2, taken: 3 } as const;
type Tokens = (typeof Tokens)[keyof typeof Tokens];

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
  // With a shared rate limit (`SharedRateLimit`): this node's share of the tenant's tokens.
  /** Leased tokens not used yet; negative while the credit of a first lease is not paid. */
  lease = 0;
  leaseMode: LeaseMode = LeaseMode.starting;
  /** The lease in flight, if any. */
  leaseInFlight: Promise<void> | undefined = undefined;
  /** Tokens of requests waiting for that lease. */
  waiting = 0;
  /** No lease before this time (the shared bucket was dry, or the source failed). */
  nextLeaseAt = 0;
  /** When the last lease arrived. */
  leasedAt = 0;
  /** Tokens the shared bucket held after the last lease. */
  sharedRemaining = 0;

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
    /**
     * A rate limit shared with the other nodes (Redis); none: each node enforces `rate_limit`
     * alone. The concurrency bulkhead stays per node either way: it protects this node.
     */
    readonly shared?: SharedRateLimit,
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
  admit(quota: TenantQuota, tokens: number): Admission | Promise<Admission> {
    const record = this.tenants.tenant(quota.tenantId);
    const found = this.#hasTokens(quota, record, tokens);
    if (found === Tokens.none) return Admission.rateLimited;
    if (typeof found === 'object') {
      return found.then((late) =>
        late === Tokens.none ? Admission.rateLimited : this.#admitWithTokens(quota, record, tokens, late),
      );
    }
    return this.#admitWithTokens(quota, record, tokens, found);
  }

  /** The rest of {@link admit} once the tokens are there. */
  #admitWithTokens(
    quota: TenantQuota,
    record: TenantRecord | undefined,
    tokens: number,
    found: Tokens,
  ): Admission {
    const outcome = this.#slot(quota, record);
    if (outcome !== Admission.admitted) {
      // Tokens taken while waiting for a lease go back to the share.
      if (found === Tokens.taken) (this.shared as SharedRateLimit).take(quota, -tokens);
      return outcome;
    }
    this.#take(quota, tokens, found);
    if (quota.inflight++ === 0) this.#activeTenants++;
    this.#inflight++;
    return Admission.admitted;
  }

  /** The concurrency bulkhead and the node limit: whether a slot is free for the tenant. */
  #slot(quota: TenantQuota, record: TenantRecord | undefined): Admission {
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
    return Admission.admitted;
  }

  /**
   * Takes `tokens` more from an admitted request's bucket (a batch, once its size is known); false
   * if the bucket lacks them, with `retryAfterSeconds` set. The slot stays held until released.
   */
  charge(quota: TenantQuota, tokens: number): boolean | Promise<boolean> {
    const record = this.tenants.tenant(quota.tenantId);
    const found = this.#hasTokens(quota, record, tokens);
    if (typeof found === 'object') {
      return found.then((late) => {
        if (late === Tokens.none) return false;
        this.#take(quota, tokens, late);
        return true;
      });
    }
    if (found === Tokens.none) return false;
    this.#take(quota, tokens, found);
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

  /**
   * Checks the tenant's tokens hold what a request of `tokens` needs: from the leased share of a
   * shared limit (a promise when it waits for a lease), else from the local bucket, refilled to now.
   */
  #hasTokens(quota: TenantQuota, record: TenantRecord | undefined, tokens: number): Tokens | Promise<Tokens> {
    const rps = record?.rateLimit?.rps ?? this.defaults.rps;
    if (rps <= 0) return Tokens.local;
    const burst = record?.rateLimit?.burst ?? (this.defaults.burst > 0 ? this.defaults.burst : rps);
    const shared = this.shared?.check(quota, rps, burst, tokens);
    if (shared === true) return Tokens.leased;
    if (shared === false) return Tokens.none;
    if (typeof shared === 'object' && shared !== null) {
      return shared.then((late) =>
        late === null ? this.#localTokens(quota, rps, burst, tokens) : late ? Tokens.taken : Tokens.none,
      );
    }
    return this.#localTokens(quota, rps, burst, tokens);
  }

  /** The local bucket, refilled to now: does it hold what a request of `tokens` needs? */
  #localTokens(quota: TenantQuota, rps: number, burst: number, tokens: number): Tokens {
    const now = this.now();
    const refilled = quota.tokens + ((now - quota.refilledAt) * rps) / 1000;
    quota.tokens = Math.min(refilled, burst);
    quota.refilledAt = now;
    const needed = Math.max(1, Math.min(tokens, burst));
    if (quota.tokens >= needed) return Tokens.local;
    quota.retryAfterSeconds = Math.max(1, Math.ceil((needed - quota.tokens) / rps));
    return Tokens.none;
  }

  /** Takes an admitted request's tokens from where the check found them. */
  #take(quota: TenantQuota, tokens: number, found: Tokens): void {
    if (found === Tokens.leased) (this.shared as SharedRateLimit).take(quota, tokens);
    else if (found === Tokens.local) quota.tokens -= tokens;
  }
}
