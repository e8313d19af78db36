import type { LocalListIndex } from '../ports/list-store.js';

/** Answers `in_list` for the rules of one evaluation. */
export interface ListMembership {
  inList(listName: string, value: unknown): boolean;
}

/**
 * The list membership one decision sees: each (list, value) is looked up at most once, on the
 * first `in_list` that asks, so only evaluated rules cost a lookup, and shadow versions evaluated
 * after the answer see the same membership as the version that decided.
 */
export class DecisionLists implements ListMembership {
  #seen: Map<string, boolean> | undefined;

  constructor(
    private readonly index: LocalListIndex,
    private readonly tenantId: string,
  ) {}

  inList(listName: string, value: unknown): boolean {
    const key = `${listName}\u0000${typeof value}\u0000${String(value)}`;
    this.#seen ??= new Map();
    const known = this.#seen.get(key);
    if (known !== undefined) return known;
    const found = this.index.contains(this.tenantId, listName, value);
    this.#seen.set(key, found);
    return found;
  }
}
