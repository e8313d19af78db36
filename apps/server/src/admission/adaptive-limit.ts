/** Settings of an {@link AdaptiveLimit}; every field but `min` and `max` has a default. */
export interface AdaptiveLimitOptions {
  /** The limit never goes below this. */
  min: number;
  /** The limit never goes above this. */
  max: number;
  /** The limit at start; `max` if unset, so an idle node takes a burst without shedding. */
  initial?: number;
  /**
   * How much slower than the long-term latency the recent latency may be before the limit shrinks:
   * 1.5 lets it be 50 % slower.
   */
  tolerance?: number;
  /** Weight of a new estimate against the current limit, 0..1. */
  smoothing?: number;
  /** Windows the long-term latency averages over (an exponential average). */
  longWindows?: number;
  /** A window of samples closes after at least this long... */
  windowMs?: number;
  /** ...and at least this many samples. */
  minWindowSamples?: number;
  /** Milliseconds on a monotonic clock; injectable for tests. */
  now?: () => number;
}

/**
 * A node-wide concurrency limit that adapts to measured latency, after Netflix's `Gradient2Limit`
 * (concurrency-limits): samples of request latency are averaged over short windows; each window's
 * average (`shortRtt`) is compared with a long exponential average (`longRtt`), and
 *
 *   gradient = clamp(tolerance × longRtt / shortRtt, 0.5, 1)
 *   estimate = estimate × (1 − smoothing) + (estimate × gradient + √estimate) × smoothing
 *
 * so rising latency (requests queueing behind each other) shrinks the limit by up to half per step,
 * and steady latency grows it by about √limit per step. While fewer than half of the slots are used
 * the limit is left alone (nothing was learnt about a higher load), and when latency falls far
 * below the long average, that average decays quickly so the limit can grow back soon after a
 * period of overload. Pure: no timers, the clock is read only when a sample arrives.
 */
export class AdaptiveLimit {
  readonly min: number;
  readonly max: number;
  readonly #tolerance: number;
  readonly #smoothing: number;
  readonly #longWindows: number;
  readonly #windowMs: number;
  readonly #minWindowSamples: number;
  readonly #now: () => number;

  #estimate: number;
  #limit: number;
  #longRtt = 0;
  #longCount = 0;
  #windowStart: number;
  #windowSum = 0;
  #windowCount = 0;
  #windowMaxInflight = 0;
  #lastShortRtt = 0;

  constructor(options: AdaptiveLimitOptions) {
    if (!(options.min >= 1 && options.max >= options.min)) {
      throw new RangeError(`adaptive limit needs 1 <= min <= max, got ${options.min}..${options.max}`);
    }
    this.min = options.min;
    this.max = options.max;
    this.#tolerance = options.tolerance ?? 1.5;
    this.#smoothing = options.smoothing ?? 0.2;
    this.#longWindows = options.longWindows ?? 600;
    this.#windowMs = options.windowMs ?? 100;
    this.#minWindowSamples = options.minWindowSamples ?? 10;
    this.#now = options.now ?? performance.now.bind(performance);
    this.#estimate = Math.min(this.max, Math.max(this.min, options.initial ?? this.max));
    this.#limit = Math.floor(this.#estimate);
    this.#windowStart = this.#now();
  }

  /** How many requests may be in flight on the node now. */
  get limit(): number {
    return this.#limit;
  }

  /** The long-term average latency (ms) the recent latency is compared with; 0 before any window. */
  get longRtt(): number {
    return this.#longRtt;
  }

  /** The average latency (ms) of the last closed window; 0 before any window. */
  get shortRtt(): number {
    return this.#lastShortRtt;
  }

  /**
   * Records one admitted request's latency and how many requests were in flight when it ended
   * (itself included). Closes the window and updates the limit when the window is complete.
   */
  sample(latencyMs: number, inflight: number): void {
    this.#windowSum += latencyMs;
    this.#windowCount++;
    if (inflight > this.#windowMaxInflight) this.#windowMaxInflight = inflight;
    if (this.#windowCount < this.#minWindowSamples) return;
    const now = this.#now();
    if (now - this.#windowStart < this.#windowMs) return;
    const shortRtt = this.#windowSum / this.#windowCount;
    const inflightPeak = this.#windowMaxInflight;
    this.#windowStart = now;
    this.#windowSum = 0;
    this.#windowCount = 0;
    this.#windowMaxInflight = 0;
    this.#update(shortRtt, inflightPeak);
  }

  #update(shortRtt: number, inflightPeak: number): void {
    this.#lastShortRtt = shortRtt;
    // The long average: a plain mean over the first windows, then exponential.
    if (this.#longCount < 10) {
      this.#longCount++;
      this.#longRtt += (shortRtt - this.#longRtt) / this.#longCount;
    } else {
      this.#longRtt += (shortRtt - this.#longRtt) * (2 / (this.#longWindows + 1));
    }
    // Latency far below the long average: load has dropped after a long overload, during which the
    // long average rose; let it fall quickly instead of waiting for the exponential average.
    if (shortRtt > 0 && this.#longRtt / shortRtt > 2) this.#longRtt *= 0.95;
    if (inflightPeak < this.#estimate / 2) return;
    const gradient =
      shortRtt > 0 ? Math.max(0.5, Math.min(1, (this.#tolerance * this.#longRtt) / shortRtt)) : 1;
    const target = this.#estimate * gradient + Math.sqrt(this.#estimate);
    const next = this.#estimate * (1 - this.#smoothing) + target * this.#smoothing;
    this.#estimate = Math.min(this.max, Math.max(this.min, next));
    this.#limit = Math.floor(this.#estimate);
  }
}
