/** The columns of an {@link IpRangeTable}, as structured-clonable typed arrays (see `toTransferable`). */
export interface TransferableRangeTable {
  readonly words: 1 | 4;
  readonly starts: Uint32Array;
  readonly ends: Uint32Array;
  readonly values: Uint32Array;
  /** Row index of each row's enclosing row, or -1. */
  readonly parents: Int32Array;
}

/**
 * A lookup table of inclusive IP ranges, each carrying a numeric value, answered by binary search.
 *
 * Rows must be sorted by range start. Ranges may nest or overlap (the packaged data has a few hundred
 * more specific ranges inside broader ones); the latest row containing an address wins, which is the
 * data's "more specific overrides" meaning. Each row records its enclosing row, so a lookup is a binary
 * search plus a walk up the (shallow) nesting chain: O(log n).
 *
 * IPv4 addresses are keys of one 32-bit word, IPv6 addresses of four (most significant first), both held
 * in typed arrays so a table of several hundred thousand rows costs a few megabytes and no objects.
 */
export class IpRangeTable {
  readonly size: number;
  private readonly words: 1 | 4;
  private readonly starts: Uint32Array;
  private readonly ends: Uint32Array;
  private readonly values: Uint32Array;
  private readonly parents: Int32Array;

  private constructor(
    words: 1 | 4,
    starts: Uint32Array,
    ends: Uint32Array,
    values: Uint32Array,
    parents?: Int32Array,
  ) {
    if (starts.length !== values.length * words || ends.length !== values.length * words) {
      throw new Error('IP range table: column lengths disagree');
    }
    this.words = words;
    this.size = values.length;
    this.starts = starts;
    this.ends = ends;
    this.values = values;
    if (parents !== undefined) {
      // Computed by the table that was transferred. Checked for shape only, plus that every parent precedes
      // its row (a linear pass, ~1 ms for the packaged data), so a lookup's walk up the chain always ends.
      if (parents.length !== values.length) throw new Error('IP range table: parent column length disagrees');
      for (let row = 0; row < parents.length; row++) {
        const parent = parents[row] as number;
        if (parent < -1 || parent >= row) throw new Error(`IP range table: row ${row} has an invalid parent`);
      }
      this.parents = parents;
      return;
    }
    this.parents = new Int32Array(values.length);
    const open: number[] = [];
    for (let row = 0; row < this.size; row++) {
      if (row > 0 && this.compareRow(this.starts, row, this.starts, row - 1) < 0) {
        throw new Error(`IP range table: row ${row} is not sorted by range start`);
      }
      while (
        open.length > 0 &&
        this.compareRow(this.ends, open[open.length - 1] as number, this.starts, row) < 0
      ) {
        open.pop();
      }
      this.parents[row] = open.length > 0 ? (open[open.length - 1] as number) : -1;
      open.push(row);
    }
  }

  /** Builds a table from rows of `[start, end, value]`, with addresses given as words (1 for IPv4, 4 for IPv6). */
  static fromWords(words: 1 | 4, starts: Uint32Array, ends: Uint32Array, values: Uint32Array): IpRangeTable {
    return new IpRangeTable(words, starts, ends, values);
  }

  /**
   * Rebuilds a table from the columns of {@link toTransferable} (typically received from a worker
   * thread), without re-sorting or recomputing the nesting chain. Internal to this package.
   */
  static fromTransferable(table: TransferableRangeTable): IpRangeTable {
    if (table.words !== 1 && table.words !== 4) throw new Error('IP range table: words must be 1 or 4');
    return new IpRangeTable(table.words, table.starts, table.ends, table.values, table.parents);
  }

  /**
   * The table's columns, including the computed parent chain, as typed arrays whose buffers can go in a
   * `postMessage` transfer list. The table must not be used after its buffers were transferred.
   * Internal to this package.
   */
  toTransferable(): TransferableRangeTable {
    return {
      words: this.words,
      starts: this.starts,
      ends: this.ends,
      values: this.values,
      parents: this.parents,
    };
  }

  /** The value of the most specific range containing `address` (given as words), or undefined. */
  lookup(address: Uint32Array): number | undefined {
    let low = 0;
    let high = this.size - 1;
    let row = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (this.compareAddress(this.starts, middle, address) <= 0) {
        row = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    while (row >= 0 && this.compareAddress(this.ends, row, address) < 0) row = this.parents[row] as number;
    return row >= 0 ? this.values[row] : undefined;
  }

  private compareAddress(column: Uint32Array, row: number, address: Uint32Array): number {
    const base = row * this.words;
    for (let word = 0; word < this.words; word++) {
      const difference = (column[base + word] as number) - (address[word] as number);
      if (difference !== 0) return difference;
    }
    return 0;
  }

  private compareRow(left: Uint32Array, leftRow: number, right: Uint32Array, rightRow: number): number {
    const leftBase = leftRow * this.words;
    const rightBase = rightRow * this.words;
    for (let word = 0; word < this.words; word++) {
      const difference = (left[leftBase + word] as number) - (right[rightBase + word] as number);
      if (difference !== 0) return difference;
    }
    return 0;
  }
}
