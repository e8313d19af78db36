import type { ListDefinition, LocalListIndex } from '../ports/list-store.js';
import { ListIndex } from './list-index.js';

/** A list held in memory: its definition and the index of its entries. */
export interface IndexedList {
  definition: ListDefinition;
  index: ListIndex;
}

/**
 * Every tenant's lists in memory, for synchronous lookups on the decision path. Stores keep it in
 * step with what they persist; it never does I/O.
 */
export class ListIndexes implements LocalListIndex {
  readonly #tenants = new Map<string, Map<string, IndexedList>>();
  /** Names per tenant, rebuilt on definition changes only. */
  readonly #names = new Map<string, readonly string[]>();
  #sweepCursor: Iterator<IndexedList> | undefined;

  constructor(readonly now: () => number = Date.now) {}

  get(tenantId: string, name: string): IndexedList | undefined {
    return this.#tenants.get(tenantId)?.get(name);
  }

  all(tenantId: string): IndexedList[] {
    return [...(this.#tenants.get(tenantId)?.values() ?? [])];
  }

  /** A tenant's list definitions, by name. */
  definitions(tenantId: string): ListDefinition[] {
    return this.all(tenantId)
      .map((list) => list.definition)
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  names(tenantId: string): readonly string[] {
    return this.#names.get(tenantId) ?? [];
  }

  contains(tenantId: string, list: string, value: unknown): boolean {
    return this.#tenants.get(tenantId)?.get(list)?.index.matches(value, this.now()) === true;
  }

  /** Adds or replaces a definition; a new type starts an empty index. */
  define(definition: ListDefinition): IndexedList {
    let lists = this.#tenants.get(definition.tenantId);
    if (lists === undefined) {
      lists = new Map();
      this.#tenants.set(definition.tenantId, lists);
    }
    const existing = lists.get(definition.name);
    if (existing !== undefined && existing.definition.type === definition.type) {
      existing.definition = definition;
      return existing;
    }
    const indexed: IndexedList = { definition, index: new ListIndex(definition.type) };
    lists.set(definition.name, indexed);
    this.#names.set(definition.tenantId, [...lists.keys()].sort());
    return indexed;
  }

  remove(tenantId: string, name: string): boolean {
    const lists = this.#tenants.get(tenantId);
    if (lists?.delete(name) !== true) return false;
    this.#names.set(tenantId, [...lists.keys()].sort());
    return true;
  }

  removeTenant(tenantId: string): void {
    this.#tenants.delete(tenantId);
    this.#names.delete(tenantId);
  }

  /**
   * Removes up to about `budget` expired entries across all lists, resuming where the previous
   * call stopped; calls `removed` with each list's removed values.
   */
  sweep(budget: number, removed: (list: IndexedList, values: string[]) => void = () => {}): void {
    const now = this.now();
    let left = budget;
    for (let lists = 0; left > 0 && lists < 1000; lists++) {
      const next = this.#sweepCursor?.next();
      if (next === undefined || next.done === true) {
        this.#sweepCursor = [...this.#tenants.values()].flatMap((tenant) => [...tenant.values()]).values();
        if (next !== undefined) return;
        continue;
      }
      const list = next.value;
      const step = Math.min(left, list.index.size);
      const values = list.index.sweep(now, step);
      left -= Math.max(1, step);
      if (values.length > 0) removed(list, values);
    }
  }
}
