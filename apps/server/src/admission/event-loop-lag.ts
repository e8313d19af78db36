/**
 * How far behind the event loop runs, measured continuously: a timer due every `intervalMs`
 * notes how late it fires. On one event loop, requests waiting to be read and parsed wait exactly
 * that long, and no request-latency sample sees it (the wait is before any hook runs), so this is
 * the signal that tells overload from a slow dependency: a slow counter store makes requests
 * slow, not the loop late.
 *
 * `lagMs` rises at once to a late tick and falls back by a third per on-time tick (about 50 ms),
 * so one long garbage-collection pause sheds for a moment, not for seconds.
 */
export class EventLoopLag {
  /** Smoothed lateness of the loop, ms. */
  lagMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #expected = 0;

  constructor(private readonly intervalMs = 10) {}

  start(): this {
    if (this.#timer !== undefined) return this;
    this.#expected = performance.now() + this.intervalMs;
    const tick = () => {
      const now = performance.now();
      this.observe(Math.max(0, now - this.#expected));
      this.#expected = now + this.intervalMs;
      this.#timer = setTimeout(tick, this.intervalMs);
      this.#timer.unref();
    };
    this.#timer = setTimeout(tick, this.intervalMs);
    this.#timer.unref();
    return this;
  }

  /** Takes one lateness sample (the timer calls it; tests may too). */
  observe(lateMs: number): void {
    this.lagMs = lateMs >= this.lagMs ? lateMs : this.lagMs * (2 / 3) + lateMs / 3;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Sheds a share of new requests while the loop is late: none at `thresholdMs` of lag, all at twice
 * that, linearly between (as RED does for queues), so the queue stops growing without the
 * all-or-nothing swings of a hard cut-off. `thresholdMs` 0 turns it off.
 *
 * Only with at least `minInflight` requests in flight: a loop that was late because of the node's
 * own work (start-up, compiling a published policy, a large import) while few requests waited has
 * no queue to shorten, and its next requests are served.
 */
export class LagShedder {
  constructor(
    readonly lag: { lagMs: number },
    readonly thresholdMs: number,
    private readonly random: () => number = Math.random,
    readonly minInflight = 8,
  ) {}

  shouldShed(inflight: number): boolean {
    const threshold = this.thresholdMs;
    if (threshold <= 0 || inflight < this.minInflight) return false;
    const over = this.lag.lagMs - threshold;
    return over > 0 && (over >= threshold || this.random() * threshold < over);
  }
}
