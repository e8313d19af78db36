/** The aggregations a feature can compute (SPEC §1). */
export const aggregations = ['count', 'sum', 'distinct', 'min', 'max', 'avg', 'last', 'first_seen'] as const;
export type Aggregation = (typeof aggregations)[number];

/**
 * The state one feature keeps: its identity and how it aggregates. A changed definition gets a new
 * `id`, so its state starts empty instead of mixing two definitions.
 */
export interface CounterSpec {
  readonly id: string;
  readonly aggregation: Aggregation;
  /** Length of the sliding window, ms. */
  readonly windowMs: number;
  /**
   * What `last` keeps: numbers (the default) or strings (`last` of a string, ip, email, phone or
   * enum field). Other aggregations ignore it.
   */
  readonly valueType?: 'number' | 'string';
}

/** One answer of `CounterStore.apply`: a number, a string (`last` of strings) or null for none. */
export type CounterValue = number | string | null;

/** One feature of one event: add the event's value under `key` (when `update`), then read. */
export interface CounterOperation {
  readonly counter: CounterSpec;
  /** The group key built from the feature's `by` fields. */
  readonly key: string;
  /** False when the event does not count (its filter is false or the aggregated field is absent). */
  readonly update: boolean;
  /**
   * Number for sum/min/max/avg/last, string for distinct and for `last` of strings; ignored by
   * count and first_seen.
   */
  readonly value: number | string | null;
}

/**
 * Sliding-window aggregates by (feature, key).
 *
 * Contract:
 * - `apply` takes the operations in order: each adds the event's value under its key at time `at`
 *   (epoch ms) when it has `update`, then reads, so a read includes the current event (and any
 *   earlier operation of the same call on the same counter and key). `results[i]` belongs to
 *   `operations[i]`; a key with nothing in the window reads 0 for count and sum, and null for the
 *   other aggregations. `last` of a counter with `valueType: 'string'` answers the newest string.
 *   One call per event, so an adapter over a network store makes one round trip.
 * - A window is exact to its bucket (see the adapter): an event counts for at least the window and
 *   at most one bucket longer.
 * - A key that receives nothing for its window holds no state afterwards.
 * - `drop` forgets every key of the given counters (a deleted or changed feature).
 */
export interface CounterStore {
  /**
   * `eventKey` names the event the operations belong to (unique per tenant). A call may be made
   * again with the same key when an earlier one failed without telling whether it was applied (a
   * network store timing out); an adapter where that can happen applies a key's updates at most
   * once within a few minutes. Calls without a key (backfill, rebuild) are always applied.
   */
  apply(at: number, operations: readonly CounterOperation[], eventKey?: string): Promise<CounterValue[]>;
  drop(counterIds: readonly string[]): Promise<void>;
}
