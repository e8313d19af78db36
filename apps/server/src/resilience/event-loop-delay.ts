import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Event-loop delay percentiles, ms. */
export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

/**
 * Event-loop delay over the last complete period (default 10 s), from
 * `perf_hooks.monitorEventLoopDelay`: a libuv timer samples the delay, so measuring costs the hot
 * path nothing. Until a first period is complete, the figures so far. The histogram records each
 * whole sampling interval; the delay reported is what exceeds the interval (an idle loop reads ~0).
 */
export class EventLoopDelayMonitor {
  readonly #histogram: IntervalHistogram;
  readonly #rotation: NodeJS.Timeout;
  readonly #resolutionNs: number;
  #last: LoopDelay | undefined;

  constructor(options: { periodMs?: number; resolutionMs?: number } = {}) {
    const resolutionMs = options.resolutionMs ?? 10;
    this.#resolutionNs = resolutionMs * 1e6;
    this.#histogram = monitorEventLoopDelay({ resolution: resolutionMs });
    this.#histogram.enable();
    this.#rotation = setInterval(() => {
      this.#last = this.#read();
      this.#histogram.reset();
    }, options.periodMs ?? 10_000);
    this.#rotation.unref();
  }

  delay(): LoopDelay {
    return this.#last ?? this.#read();
  }

  close(): void {
    clearInterval(this.#rotation);
    this.#histogram.disable();
  }

  #read(): LoopDelay {
    const histogram = this.#histogram;
    // Nanoseconds past the interval to milliseconds, to the microsecond; empty reads 0, not NaN.
    const ms = (ns: number) =>
      Number.isFinite(ns) && histogram.count > 0
        ? Math.round(Math.max(0, ns - this.#resolutionNs) / 1000) / 1000
        : 0;
    return { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) };
  }
}
