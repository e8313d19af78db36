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
 * Only where there is a queue to shorten: at least `minimum` requests in flight, or at least
 * `minimum` asking for admission within the last `arrivalWindowMs` or so (this one included). A
 * loop that was late because of the node's own work (start-up, compiling a published policy, a
 * large import) while few requests came has no queue, and its next requests are served. In-flight
 * requests alone are not enough of a measure: under overload requests wait in sockets before
 * admission, each is answered soon after it is admitted, and few are in flight at any moment while
 * the loop runs far behind.
 */
export class LagShedder {
  #arrivals = 0;
  #previous = 0;
  #windowStart = Number.NEGATIVE_INFINITY;

  constructor(
    readonly lag: { lagMs: number },
    readonly thresholdMs: number,
    private readonly random: () => number = Math.random,
    readonly minimum = 8,
    private readonly now: () => number = () => performance.now(),
    readonly arrivalWindowMs = 100,
  ) {}

  shouldShed(inflight: number): boolean {
    const threshold = this.thresholdMs;
    if (threshold <= 0) return false;
    const now = this.now();
    if (now - this.#windowStart >= this.arrivalWindowMs) {
      // The window just ended counts when it ended a moment ago; an older one does not.
      this.#previous = now - this.#windowStart < 2 * this.arrivalWindowMs ? this.#arrivals : 0;
      this.#arrivals = 0;
      this.#windowStart = now;
    }
    this.#arrivals += 1;
    if (inflight < this.minimum && this.#arrivals + this.#previous < this.minimum) return false;
    const over = this.lag.lagMs - threshold;
    return over > 0 && (over >= threshold || this.random() * threshold < over);
  }
}
