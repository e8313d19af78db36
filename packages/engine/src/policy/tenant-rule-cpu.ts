/**
 * Each tenant's share of this node's time for evaluating rules: a token bucket in milliseconds
 * that refills at `msPerSecond` and holds at most `burstMs`.
 *
 * The CPU guard cuts one evaluation off at its policy's budget (`VIGIL_POLICY_CPU_BUDGET_MS`), but
 * a tenant whose every event costs that much still takes the event loop from everyone else: 40
 * events a second at 10 ms is 40% of a core. With this share spent, the tenant's next evaluations
 * get what is left of it as their budget, down to none: the guard then cuts them off at its first
 * clock read, after microseconds of work. They are answered, degraded `policy_cpu`, their rules in
 * `errors` and following `on_missing`, until the bucket refills.
 *
 * Only evaluations long enough for the guard to read the clock are charged (see
 * `EvaluationGuard.elapsedMs`), so a tenant with cheap rules never has an entry here, and its
 * decisions read no clock for it.
 */
export class TenantRuleCpu {
  readonly #msPerSecond: number;
  readonly #burstMs: number;
  readonly #now: () => number;
  /** Tenants whose bucket is not full: tokens (ms) left when last seen, and when. */
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * `msPerSecond`: the share (1000 is a whole core); `burstMs`: what a tenant may use at once
   * after being idle (default: one second's worth). `now` is `performance.now()` by default.
   */
  constructor(
    msPerSecond: number,
    burstMs: number = msPerSecond,
    now: () => number = () => performance.now(),
  ) {
    if (!(msPerSecond > 0) || !(burstMs > 0)) throw new RangeError('a rule CPU share must be positive');
    this.#msPerSecond = msPerSecond;
    this.#burstMs = burstMs;
    this.#now = now;
  }

  /** The CPU budget for the tenant's next evaluation: `policyBudgetMs`, or less once its share is spent. */
  budget(tenantId: string, policyBudgetMs: number): number {
    const bucket = this.#buckets.get(tenantId);
    if (bucket === undefined) return policyBudgetMs;
    const tokens = this.#refill(bucket);
    if (tokens >= this.#burstMs) {
      this.#buckets.delete(tenantId);
      return policyBudgetMs;
    }
    return Math.max(0, Math.min(policyBudgetMs, tokens));
  }

  /** Takes `ms` of evaluation time from the tenant's share. */
  charge(tenantId: string, ms: number): void {
    if (!(ms > 0)) return;
    let bucket = this.#buckets.get(tenantId);
    if (bucket === undefined) {
      bucket = { tokens: this.#burstMs, at: this.#now() };
      this.#buckets.set(tenantId, bucket);
    } else {
      this.#refill(bucket);
    }
    bucket.tokens -= ms;
  }

  /** Whether the tenant has spent its whole share (its evaluations are cut off at once). */
  exhausted(tenantId: string): boolean {
    const bucket = this.#buckets.get(tenantId);
    return bucket !== undefined && this.#refill(bucket) <= 0;
  }

  #refill(bucket: { tokens: number; at: number }): number {
    const now = this.#now();
    bucket.tokens = Math.min(this.#burstMs, bucket.tokens + ((now - bucket.at) * this.#msPerSecond) / 1000);
    bucket.at = now;
    return bucket.tokens;
  }
}
