import { CircuitState, type IBreaker, SamplingBreaker } from 'cockatiel';
import { type Component, components } from './faults.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

/** The value of `vigil_circuit_breaker_state` for each state. */
export const breakerStateValue: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export interface BreakerOptions {
  /** Share of failed calls (0..1, exclusive) over the sampling window above which the breaker opens. */
  threshold: number;
  /** Length of the sampling window, ms. */
  samplingMs: number;
  /**
   * Calls per second, averaged over the sampling window, below which the breaker never opens, so
   * a single failure (or a few at low traffic) cannot trip it.
   */
  minimumRps: number;
  /** How long an open breaker refuses calls before it lets one probe through, ms. */
  halfOpenAfterMs: number;
  /**
   * How long a probe may take before it counts as failed, ms. Without it a probe that never
   * answers would hold the breaker half-open for good.
   */
  probeTimeoutMs: number;
  now: () => number;
}

export const defaultBreakerOptions: BreakerOptions = {
  threshold: 0.5,
  samplingMs: 10_000,
  minimumRps: 1,
  halfOpenAfterMs: 5_000,
  probeTimeoutMs: 2_000,
  now: Date.now,
};

/** A call was refused because the breaker is open (or half-open with its probe in flight). */
export const refused = -1;
/** A call allowed while the breaker is closed. */
export const normalCall = 0;

/**
 * One circuit breaker: closed → open when cockatiel's `SamplingBreaker` says the failure rate over
 * its window is above the threshold at a sufficient call volume; open → half-open when a call
 * arrives after `halfOpenAfterMs`, and that call alone is the probe; the probe's success closes
 * the breaker, its failure (or its not answering within `probeTimeoutMs`) opens it again.
 *
 * The state machine is here rather than cockatiel's `CircuitBreakerPolicy` because the guarded
 * calls include synchronous ones (the in-memory list index, enrichment), which an async
 * `execute()` cannot wrap, and because the hot path should not pay a promise chain per call;
 * cockatiel's policy also queues every caller behind a half-open probe, where a decision must
 * instead fail fast and fall back.
 *
 * Use: `const ticket = breaker.acquire()`; `refused` means fail fast without calling; otherwise
 * call, then `success(ticket)` or `failure(ticket)`.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  readonly #sampling: IBreaker;
  readonly #options: BreakerOptions;
  #openedAt = 0;
  /** Ticket of the probe in flight (tickets above 0 are probes), and when it started. */
  #probe = 0;
  #probeStartedAt = 0;
  #nextProbe = 1;
  /** Lifetime figures, for the health report. */
  calls = 0;
  failures = 0;
  rejected = 0;
  opened = 0;
  lastFailure: { at: number; message: string } | null = null;

  constructor(
    readonly component: Component,
    options: Partial<BreakerOptions> = {},
  ) {
    this.#options = { ...defaultBreakerOptions, ...options };
    this.#sampling = new SamplingBreaker({
      threshold: this.#options.threshold,
      duration: this.#options.samplingMs,
      minimumRps: this.#options.minimumRps,
    });
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** True while closed: the caller may skip the bookkeeping of calls that cannot fail. */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** When the breaker last opened (epoch ms), or null while closed. */
  get openedAt(): number | null {
    return this.#state === 'closed' ? null : this.#openedAt;
  }

  /** Permission for one call: `refused`, `normalCall`, or a probe ticket (above 0). */
  acquire(): number {
    if (this.#state === 'closed') return normalCall;
    const now = this.#options.now();
    if (this.#state === 'half_open') {
      if (now - this.#probeStartedAt < this.#options.probeTimeoutMs) {
        this.rejected++;
        return refused;
      }
      // The probe did not answer in time: it counts as a failure, and the breaker waits again.
      this.#recordFailure('probe did not answer in time');
      this.#open(now);
      this.rejected++;
      return refused;
    }
    if (now - this.#openedAt < this.#options.halfOpenAfterMs) {
      this.rejected++;
      return refused;
    }
    this.#state = 'half_open';
    this.#probe = this.#nextProbe++;
    this.#probeStartedAt = now;
    return this.#probe;
  }

  success(ticket: number): void {
    this.calls++;
    if (ticket === normalCall) {
      if (this.#state === 'closed') this.#sampling.success(CircuitState.Closed);
      return;
    }
    if (ticket !== this.#probe || this.#state !== 'half_open') return;
    this.#sampling.success(CircuitState.HalfOpen);
    this.#state = 'closed';
    this.#probe = 0;
  }

  failure(ticket: number, error?: unknown): void {
    this.calls++;
    this.#recordFailure(error);
    if (ticket === normalCall) {
      // A call that started while closed and ends after the breaker opened changes nothing.
      if (this.#state === 'closed' && this.#sampling.failure(CircuitState.Closed))
        this.#open(this.#options.now());
      return;
    }
    if (ticket !== this.#probe || this.#state !== 'half_open') return;
    this.#sampling.failure(CircuitState.HalfOpen);
    this.#open(this.#options.now());
  }

  /**
   * Gives a ticket back without an outcome (the call never reached the dependency for a reason
   * that says nothing about it): a probe's place goes to the next call.
   */
  release(ticket: number): void {
    if (ticket === normalCall || ticket !== this.#probe || this.#state !== 'half_open') return;
    this.#state = 'open';
    this.#probe = 0;
  }

  #recordFailure(error: unknown): void {
    this.failures++;
    this.lastFailure = {
      at: this.#options.now(),
      message: error instanceof Error ? error.message : String(error ?? 'failed'),
    };
  }

  #open(now: number): void {
    this.#state = 'open';
    this.#openedAt = now;
    this.#probe = 0;
    this.opened++;
  }
}

/** One breaker per guarded component. */
export class Breakers {
  readonly #breakers: Record<Component, CircuitBreaker>;

  constructor(options: Partial<BreakerOptions> = {}) {
    this.#breakers = Object.fromEntries(
      components.map((component) => [component, new CircuitBreaker(component, options)]),
    ) as Record<Component, CircuitBreaker>;
  }

  of(component: Component): CircuitBreaker {
    return this.#breakers[component];
  }

  all(): CircuitBreaker[] {
    return components.map((component) => this.#breakers[component]);
  }
}
