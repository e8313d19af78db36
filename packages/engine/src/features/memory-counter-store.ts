import type {
  Aggregation,
  CounterOperation,
  CounterSpec,
  CounterStore,
  CounterValue,
} from '../ports/counter-store.js';
import { SlidingHyperLogLog } from './sliding-hyperloglog.js';

/** Buckets per window: a window is exact to 1/60 of its length. */
export const bucketsPerWindow = 60;
/** Ring slots: the window's buckets plus the current, partly filled one. */
const slots = bucketsPerWindow + 1;
/** Distinct values counted exactly per key; beyond, a sliding HyperLogLog estimates. */
export const exactDistinctLimit = 1000;

export interface MemoryCounterStoreOptions {
  /** Distinct values kept exactly per key before switching to HyperLogLog. */
  exactDistinctLimit?: number;
}

/** The bucket an instant falls in, for a window. */
export function bucketOf(at: number, windowMs: number): number {
  return Math.floor(at / (windowMs / bucketsPerWindow));
}

type Column = Float64Array | Uint32Array;

/**
 * Rows per chunk of a table's typed arrays. A table grows by one chunk at a time: no copy of what
 * it holds, and no doubling that allocates (and makes V8 count as external memory, which starts
 * full collections) twice the table at once. Profiled at full load with 100,000 new accounts,
 * doubling and copying contiguous arrays cost about 9 µs per decision, and stalled the event loop
 * for tens of milliseconds at each doubling of a large table.
 */
const chunkBits = 10;
const chunkRows = 1 << chunkBits;
const chunkMask = chunkRows - 1;

/**
 * Bucketed rings of every key of one bucketed aggregation, in a few typed arrays shared by all
 * keys (one row per key), so a key costs a row of numbers and a map entry, not objects. The arrays
 * are chunks of {@link chunkRows} rows: row `r` is row `r & chunkMask` of chunk `r >> chunkBits`.
 * Row `r` holds buckets `latest(r) - 60 .. latest(r)`, bucket `b` in slot `b % 61`.
 */
class BucketTable {
  readonly #rows = new Map<string, number>();
  #keys: (string | undefined)[] = [];
  /** Per chunk, each row's newest bucket. */
  readonly #latest: Float64Array[] = [];
  /** Per column, its chunks: `width` slots per row. */
  readonly #columns: Column[][];
  /** Per additive column, per chunk, the sum of each row's ring, so a read needs no loop. */
  readonly #totals: Float64Array[][];
  readonly #kinds: ('u32' | 'f64')[];
  readonly #additive: boolean[];
  readonly #empty: number[];
  readonly #width: number;
  #free: number[] = [];
  #capacity = 0;
  #cursor = 0;

  constructor(
    readonly spec: CounterSpec,
    kinds: ('u32' | 'f64')[],
    empty: number[],
    width: number,
    additive: boolean[],
  ) {
    this.#kinds = kinds;
    this.#columns = kinds.map(() => []);
    this.#additive = additive;
    this.#totals = kinds.map(() => []);
    this.#empty = empty;
    this.#width = width;
  }

  get size(): number {
    return this.#rows.size;
  }

  /**
   * The row of a key; for an update it is created if absent and advanced to `bucket` (slots of
   * buckets that left the ring cleared). Reads change nothing, so a key only read still expires.
   */
  row(key: string, bucket: number, update: boolean): number | undefined {
    let row = this.#rows.get(key);
    if (row === undefined) {
      if (!update) return undefined;
      row = this.#allocate(key, bucket);
    }
    const latestChunk = this.#latest[row >> chunkBits] as Float64Array;
    const local = row & chunkMask;
    const latest = latestChunk[local] as number;
    if (update && bucket > latest) {
      const width = this.#width;
      if (width === 1) {
        if (bucket - latest > bucketsPerWindow) this.#clear(row);
      } else {
        const first = Math.max(latest + 1, bucket - slots + 1);
        for (let b = first; b <= bucket; b++) this.#clearSlot(row, b % slots);
      }
      latestChunk[local] = bucket;
    }
    return row;
  }

  /** The chunk of `column` that holds `row`; its slots start at {@link baseOf}(row). */
  chunkOf(column: number, row: number): Column {
    return (this.#columns[column] as Column[])[row >> chunkBits] as Column;
  }

  /** Where `row`'s slots start in its chunk. */
  baseOf(row: number): number {
    return (row & chunkMask) * this.#width;
  }

  /** Adds to slot `slot` of `row` in an additive column, keeping the row's total. */
  add(column: number, row: number, slot: number, amount: number): void {
    const values = this.chunkOf(column, row);
    const index = this.baseOf(row) + slot;
    values[index] = (values[index] as number) + amount;
    const totals = (this.#totals[column] as Float64Array[])[row >> chunkBits] as Float64Array;
    const local = row & chunkMask;
    totals[local] = (totals[local] as number) + amount;
  }

  /**
   * The sum of an additive column over the window ending at `bucket`: the row's total less the
   * slots that left the window since the row's newest bucket.
   */
  windowTotal(column: number, row: number, bucket: number): number {
    const latest = this.latest(row);
    const values = this.chunkOf(column, row);
    const base = this.baseOf(row);
    if (bucket < latest) {
      let total = 0;
      for (let b = latest - bucketsPerWindow; b <= bucket; b++) total += values[base + (b % slots)] as number;
      return total;
    }
    if (bucket - latest >= slots) return 0;
    const totals = (this.#totals[column] as Float64Array[])[row >> chunkBits] as Float64Array;
    let total = totals[row & chunkMask] as number;
    for (let b = latest - bucketsPerWindow; b < bucket - bucketsPerWindow; b++)
      total -= values[base + (b % slots)] as number;
    return total;
  }

  latest(row: number): number {
    return (this.#latest[row >> chunkBits] as Float64Array)[row & chunkMask] as number;
  }

  /** Frees up to `budget` rows whose newest bucket left the window. */
  sweep(bucket: number, budget: number): void {
    for (let step = 0; step < budget && this.#capacity > 0; step++) {
      if (this.#cursor >= this.#capacity) this.#cursor = 0;
      const row = this.#cursor++;
      const key = this.#keys[row];
      if (key !== undefined && this.latest(row) < bucket - bucketsPerWindow) {
        this.#rows.delete(key);
        this.#keys[row] = undefined;
        this.#free.push(row);
      }
    }
  }

  #allocate(key: string, bucket: number): number {
    let row = this.#free.pop();
    if (row === undefined) {
      if (this.#rows.size >= this.#capacity) this.#grow();
      row = this.#rows.size;
    }
    this.#rows.set(key, row);
    this.#keys[row] = key;
    this.#clear(row);
    (this.#latest[row >> chunkBits] as Float64Array)[row & chunkMask] = bucket;
    return row;
  }

  /** Empties a whole row: one native fill per column (a new key does this for every bucket). */
  #clear(row: number): void {
    const start = this.baseOf(row);
    const end = start + this.#width;
    const chunk = row >> chunkBits;
    const local = row & chunkMask;
    for (let column = 0; column < this.#columns.length; column++) {
      ((this.#columns[column] as Column[])[chunk] as Column).fill(this.#empty[column] as number, start, end);
      if (this.#additive[column] === true)
        ((this.#totals[column] as Float64Array[])[chunk] as Float64Array)[local] = 0;
    }
  }

  #clearSlot(row: number, slot: number): void {
    const chunk = row >> chunkBits;
    const local = row & chunkMask;
    const index = this.baseOf(row) + slot;
    for (let column = 0; column < this.#columns.length; column++) {
      const values = (this.#columns[column] as Column[])[chunk] as Column;
      if (this.#additive[column] === true) {
        const totals = (this.#totals[column] as Float64Array[])[chunk] as Float64Array;
        totals[local] = (totals[local] as number) - (values[index] as number);
      }
      values[index] = this.#empty[column] as number;
    }
  }

  /**
   * Makes room for more rows. The first chunk starts at 64 rows and doubles (a copy, while it is
   * small) up to {@link chunkRows}, so a counter with a few keys costs a few kilobytes; after it,
   * every growth adds a whole chunk and moves nothing.
   */
  #grow(): void {
    const first = this.#latest.length <= 1 && this.#capacity < chunkRows;
    const rows = first ? Math.max(64, this.#capacity * 2) : chunkRows;
    const grown = <T extends Column>(chunks: T[], make: (length: number) => T, perRow: number) => {
      const chunk = make(rows * perRow);
      if (first && chunks.length === 1) chunk.set(chunks[0] as T);
      if (first) chunks[0] = chunk;
      else chunks.push(chunk);
    };
    const u32 = (length: number) => new Uint32Array(length);
    const f64 = (length: number) => new Float64Array(length);
    for (let index = 0; index < this.#columns.length; index++) {
      grown(this.#columns[index] as Column[], this.#kinds[index] === 'u32' ? u32 : f64, this.#width);
      if (this.#additive[index] === true) grown(this.#totals[index] as Float64Array[], f64, 1);
    }
    grown(this.#latest, f64, 1);
    this.#capacity = first ? rows : this.#capacity + chunkRows;
  }
}

interface DistinctState {
  /** Value → newest bucket it was seen in, oldest first (re-inserted on every sighting). */
  exact: Map<string, number> | undefined;
  sketch: SlidingHyperLogLog | undefined;
  latest: number;
}

/** Distinct values per key: exact up to a limit, then a sliding HyperLogLog. */
class DistinctTable {
  readonly keys = new Map<string, DistinctState>();
  #sweeper: Iterator<[string, DistinctState]> | undefined;

  constructor(
    readonly spec: CounterSpec,
    readonly limit: number,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  add(key: string, value: string, bucket: number): void {
    let state = this.keys.get(key);
    if (state === undefined || state.latest < bucket - bucketsPerWindow) {
      state = { exact: new Map(), sketch: undefined, latest: bucket };
      this.keys.set(key, state);
    }
    state.latest = Math.max(state.latest, bucket);
    if (state.sketch !== undefined) {
      state.sketch.add(value, bucket);
      return;
    }
    const exact = state.exact as Map<string, number>;
    exact.delete(value);
    exact.set(value, Math.max(bucket, state.latest));
    if (exact.size > this.limit) {
      prune(exact, bucket);
      if (exact.size > this.limit) {
        const sketch = new SlidingHyperLogLog(bucket - bucketsPerWindow);
        for (const [seen, at] of exact) sketch.add(seen, at);
        state.sketch = sketch;
        state.exact = undefined;
      }
    }
  }

  read(key: string, bucket: number): number {
    const state = this.keys.get(key);
    if (state === undefined || state.latest < bucket - bucketsPerWindow) return 0;
    if (state.sketch !== undefined) return state.sketch.estimate(bucket - bucketsPerWindow);
    const exact = state.exact as Map<string, number>;
    prune(exact, bucket);
    return exact.size;
  }

  sweep(bucket: number, budget: number): void {
    for (let step = 0; step < budget; step++) {
      this.#sweeper ??= this.keys.entries();
      const next = this.#sweeper.next();
      if (next.done === true) {
        this.#sweeper = undefined;
        return;
      }
      const [key, state] = next.value;
      if (state.latest < bucket - bucketsPerWindow) this.keys.delete(key);
    }
  }
}

/** Drops the values that left the window; the map is oldest first. */
function prune(exact: Map<string, number>, bucket: number): void {
  for (const [value, seen] of exact) {
    if (seen >= bucket - bucketsPerWindow) return;
    exact.delete(value);
  }
}

/** The newest string of a key and when it came (`last` of a string field). */
interface LastString {
  value: string;
  at: number;
}

/**
 * `last` of strings: per key the newest value and its time, O(1) whatever the traffic. Numbers
 * stay in a `BucketTable` of two columns; strings cannot live in a typed array.
 */
class LastStringTable {
  readonly keys = new Map<string, LastString>();
  #sweeper: Iterator<[string, LastString]> | undefined;

  constructor(readonly spec: CounterSpec) {}

  get size(): number {
    return this.keys.size;
  }

  /** Keeps `value` when it is at least as new as the one held, then reads the newest in the window. */
  apply(key: string, value: string | null, at: number, bucket: number): string | null {
    let state = this.keys.get(key);
    if (value !== null) {
      if (state === undefined) {
        state = { value, at };
        this.keys.set(key, state);
      } else if (at >= state.at) {
        state.value = value;
        state.at = at;
      }
    }
    if (state === undefined || bucketOf(state.at, this.spec.windowMs) < bucket - bucketsPerWindow)
      return null;
    return state.value;
  }

  /** Frees up to `budget` keys whose value left the window, going round the keys at most once more. */
  sweep(bucket: number, budget: number): void {
    let wrapped = false;
    for (let step = 0; step < budget; step++) {
      this.#sweeper ??= this.keys.entries();
      const next = this.#sweeper.next();
      if (next.done === true) {
        this.#sweeper = undefined;
        if (wrapped) return;
        wrapped = true;
        continue;
      }
      const [key, state] = next.value;
      if (bucketOf(state.at, this.spec.windowMs) < bucket - bucketsPerWindow) this.keys.delete(key);
    }
  }
}

type Table = BucketTable | DistinctTable | LastStringTable;

interface TableShape {
  kinds: ('u32' | 'f64')[];
  empty: number[];
  width: number;
  additive: boolean[];
}

const tableShapes: Record<Exclude<Aggregation, 'distinct'>, TableShape> = {
  count: { kinds: ['u32'], empty: [0], width: slots, additive: [true] },
  sum: { kinds: ['f64'], empty: [0], width: slots, additive: [true] },
  avg: { kinds: ['u32', 'f64'], empty: [0, 0], width: slots, additive: [true, true] },
  min: { kinds: ['f64'], empty: [Number.POSITIVE_INFINITY], width: slots, additive: [false] },
  max: { kinds: ['f64'], empty: [Number.NEGATIVE_INFINITY], width: slots, additive: [false] },
  first_seen: { kinds: ['f64'], empty: [Number.POSITIVE_INFINITY], width: slots, additive: [false] },
  // `last` needs no buckets: the newest value and when it came.
  last: {
    kinds: ['f64', 'f64'],
    empty: [Number.NaN, Number.NEGATIVE_INFINITY],
    width: 1,
    additive: [false, false],
  },
};

/**
 * The in-process counter store: sliding windows of 60 buckets (plus the current one) per key, so
 * a key costs O(60) numbers whatever its traffic, and a window is exact to 1/60 of its length: an
 * event counts for at least the window and at most one bucket more. Idle keys are freed
 * incrementally, a few rows per call, never in one long sweep.
 */
export class MemoryCounterStore implements CounterStore {
  readonly #tables = new Map<string, Table>();
  readonly #exactDistinctLimit: number;
  #sweepCursor: Iterator<Table> | undefined;

  constructor(options: MemoryCounterStoreOptions = {}) {
    this.#exactDistinctLimit = options.exactDistinctLimit ?? exactDistinctLimit;
  }

  async apply(at: number, operations: readonly CounterOperation[]): Promise<CounterValue[]> {
    return this.applyNow(at, operations);
  }

  /** `apply` without the promise, for callers in process (replay, benchmarks). */
  applyNow(at: number, operations: readonly CounterOperation[]): CounterValue[] {
    const results: CounterValue[] = new Array(operations.length);
    for (let index = 0; index < operations.length; index++) {
      const operation = operations[index] as CounterOperation;
      const table = this.#table(operation.counter);
      const bucket = bucketOf(at, operation.counter.windowMs);
      results[index] =
        table instanceof BucketTable
          ? bucketed(table, operation, at, bucket)
          : table instanceof DistinctTable
            ? distinct(table, operation, bucket)
            : lastString(table, operation, at, bucket);
      table.sweep(bucket, 2);
    }
    return results;
  }

  async drop(counterIds: readonly string[]): Promise<void> {
    for (const id of counterIds) this.#tables.delete(id);
  }

  /**
   * Frees idle keys of up to `budget` rows across all counters, round robin; call it now and then
   * so counters that stopped receiving events release their memory too.
   */
  expire(at: number, budget = 10_000): void {
    let left = budget;
    while (left > 0 && this.#tables.size > 0) {
      this.#sweepCursor ??= this.#tables.values();
      const next = this.#sweepCursor.next();
      if (next.done === true) {
        this.#sweepCursor = undefined;
        return;
      }
      const table = next.value;
      const share = Math.min(left, 1000);
      table.sweep(bucketOf(at, table.spec.windowMs), share);
      left -= share;
    }
  }

  /** Keys holding state, over all counters (for tests and metrics). */
  keyCount(): number {
    let keys = 0;
    for (const table of this.#tables.values()) keys += table.size;
    return keys;
  }

  #table(spec: CounterSpec): Table {
    let table = this.#tables.get(spec.id);
    const strings = spec.aggregation === 'last' && spec.valueType === 'string';
    // A `last` whose field was retyped (string <-> number) in the event type starts afresh.
    if (table === undefined || table instanceof LastStringTable !== strings) {
      if (spec.aggregation === 'distinct') table = new DistinctTable(spec, this.#exactDistinctLimit);
      else if (strings) table = new LastStringTable(spec);
      else {
        const shape = tableShapes[spec.aggregation];
        table = new BucketTable(spec, shape.kinds, shape.empty, shape.width, shape.additive);
      }
      this.#tables.set(spec.id, table);
    }
    return table;
  }
}

function distinct(table: DistinctTable, operation: CounterOperation, bucket: number): number {
  if (operation.update && operation.value !== null) table.add(operation.key, String(operation.value), bucket);
  return table.read(operation.key, bucket);
}

function lastString(
  table: LastStringTable,
  operation: CounterOperation,
  at: number,
  bucket: number,
): string | null {
  const value = operation.update && operation.value !== null ? String(operation.value) : null;
  return table.apply(operation.key, value, at, bucket);
}

function bucketed(
  table: BucketTable,
  operation: CounterOperation,
  at: number,
  bucket: number,
): number | null {
  const aggregation = operation.counter.aggregation;
  const value = typeof operation.value === 'number' ? operation.value : Number.NaN;
  const updates =
    operation.update && (aggregation === 'count' || aggregation === 'first_seen' || !Number.isNaN(value));
  const row = table.row(operation.key, bucket, updates);
  if (row === undefined) return aggregation === 'count' || aggregation === 'sum' ? 0 : null;
  const latest = table.latest(row);
  const base = table.baseOf(row);
  if (aggregation === 'last') {
    const values = table.chunkOf(0, row);
    const times = table.chunkOf(1, row);
    if (updates && at >= (times[base] as number)) {
      values[base] = value;
      times[base] = at;
    }
    return bucketOf(times[base] as number, operation.counter.windowMs) >= bucket - bucketsPerWindow
      ? (values[base] as number)
      : null;
  }
  // An update older than the ring (a clock step back) is too old to count.
  const slot = updates && bucket > latest - slots ? bucket % slots : -1;
  const first = Math.max(bucket, latest) - bucketsPerWindow;
  const last = Math.min(bucket, latest);
  switch (aggregation) {
    case 'count':
      if (slot >= 0) table.add(0, row, slot, 1);
      return table.windowTotal(0, row, bucket);
    case 'sum':
      if (slot >= 0) table.add(0, row, slot, value);
      return table.windowTotal(0, row, bucket);
    case 'avg': {
      if (slot >= 0) {
        table.add(0, row, slot, 1);
        table.add(1, row, slot, value);
      }
      const count = table.windowTotal(0, row, bucket);
      return count === 0 ? null : table.windowTotal(1, row, bucket) / count;
    }
    case 'min':
    case 'first_seen': {
      const mins = table.chunkOf(0, row);
      const sample = aggregation === 'min' ? value : at;
      if (slot >= 0 && sample < (mins[base + slot] as number)) mins[base + slot] = sample;
      let least = Number.POSITIVE_INFINITY;
      for (let b = first; b <= last; b++) least = Math.min(least, mins[base + (b % slots)] as number);
      if (least === Number.POSITIVE_INFINITY) return null;
      // first_seen: seconds since the key's earliest event in the window.
      return aggregation === 'min' ? least : Math.max(0, at - least) / 1000;
    }
    case 'max': {
      const maxes = table.chunkOf(0, row);
      if (slot >= 0 && value > (maxes[base + slot] as number)) maxes[base + slot] = value;
      let most = Number.NEGATIVE_INFINITY;
      for (let b = first; b <= last; b++) most = Math.max(most, maxes[base + (b % slots)] as number);
      return most === Number.NEGATIVE_INFINITY ? null : most;
    }
    default:
      return null;
  }
}
