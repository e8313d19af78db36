/** What became of an asynchronous stage a decision waited for. */
export const StageOutcome = { Done: 1, Failed: 2, Overrun: 3 } as const;

export type StageOutcome = (typeof StageOutcome)[keyof typeof StageOutcome];

const pending = 0;

/** One decision waiting for one stage. Every instance has the same shape. */
class StageWait {
  outcome: StageOutcome | typeof pending = pending;
  resolve: ((outcome: StageOutcome) => void) | undefined = undefined;

  constructor(readonly expiresAt: number) {}
}

function settle(wait: StageWait, outcome: StageOutcome): void {
  if (wait.outcome !== pending) return;
  wait.outcome = outcome;
  const resolve = wait.resolve as (outcome: StageOutcome) => void;
  // Dropped so a wait kept in the heap until it surfaces holds no decision alive.
  wait.resolve = undefined;
  resolve(outcome);
}

/**
 * Waits for asynchronous stages within their budgets, with no timer per decision.
 *
 * A wait first goes to a list of fresh waits; one `setImmediate` per turn of the event loop moves
 * those still pending into a heap ordered by expiry, and one shared timer is armed for the
 * earliest. A stage that answers within the same turn, as an in-memory store does, never reaches
 * the heap, so the common case costs a promise and an array slot. Each expired wait resolves as
 * `Overrun`; the stage's own promise resolving later changes nothing.
 */
export class StageWaits {
  readonly #fresh: StageWait[] = [];
  /** Binary min-heap on `expiresAt`; settled waits are dropped when they reach the top. */
  readonly #heap: StageWait[] = [];
  #sweepScheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #timerAt = Number.POSITIVE_INFINITY;

  /**
   * Resolves with `Done` when `result` resolves, `Failed` when it rejects, or `Overrun` once
   * `expiresAt` (a `performance.now()` value) has passed, whichever comes first. An expiry already
   * past still lets a result that arrives within this turn of the event loop count.
   */
  wait(result: PromiseLike<unknown>, expiresAt: number): Promise<StageOutcome> {
    const wait = new StageWait(expiresAt);
    const outcome = new Promise<StageOutcome>((resolve) => {
      wait.resolve = resolve;
    });
    result.then(
      () => settle(wait, StageOutcome.Done),
      () => settle(wait, StageOutcome.Failed),
    );
    this.#fresh.push(wait);
    if (!this.#sweepScheduled) {
      this.#sweepScheduled = true;
      setImmediate(this.#sweep);
    }
    return outcome;
  }

  /** Waits not yet settled (for tests and gauges). */
  get pendingCount(): number {
    let count = 0;
    for (const wait of this.#fresh) if (wait.outcome === pending) count++;
    for (const wait of this.#heap) if (wait.outcome === pending) count++;
    return count;
  }

  readonly #sweep = (): void => {
    this.#sweepScheduled = false;
    const fresh = this.#fresh;
    for (let index = 0; index < fresh.length; index++) {
      const wait = fresh[index] as StageWait;
      if (wait.outcome === pending) heapPush(this.#heap, wait);
    }
    fresh.length = 0;
    this.#expire();
  };

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#expire();
  };

  /** Settles every expired wait and arms the timer for the earliest one left. */
  #expire(): void {
    const heap = this.#heap;
    let now = Number.NaN;
    while (heap.length > 0) {
      const top = heap[0] as StageWait;
      if (top.outcome !== pending) {
        heapPop(heap);
        continue;
      }
      if (Number.isNaN(now)) now = performance.now();
      if (top.expiresAt > now) break;
      heapPop(heap);
      settle(top, StageOutcome.Overrun);
    }
    if (heap.length === 0) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    const at = (heap[0] as StageWait).expiresAt;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    // Rounded up: a timer never fires early, so an expiry is never decided before its time.
    this.#timer = setTimeout(this.#onTimer, Math.max(1, Math.ceil(at - now)));
  }
}

function heapPush(heap: StageWait[], wait: StageWait): void {
  let index = heap.length;
  heap.push(wait);
  while (index > 0) {
    const parent = (index - 1) >> 1;
    const above = heap[parent] as StageWait;
    if (above.expiresAt <= wait.expiresAt) break;
    heap[index] = above;
    index = parent;
  }
  heap[index] = wait;
}

function heapPop(heap: StageWait[]): void {
  const last = heap.pop() as StageWait;
  const size = heap.length;
  if (size === 0) return;
  let index = 0;
  for (;;) {
    const left = 2 * index + 1;
    if (left >= size) break;
    const right = left + 1;
    const child =
      right < size && (heap[right] as StageWait).expiresAt < (heap[left] as StageWait).expiresAt
        ? right
        : left;
    if ((heap[child] as StageWait).expiresAt >= last.expiresAt) break;
    heap[index] = heap[child] as StageWait;
    index = child;
  }
  heap[index] = last;
}
