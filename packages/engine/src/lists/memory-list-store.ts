import type {
  ListDefinition,
  ListEntry,
  ListQuery,
  ListStore,
  ListWriteResult,
  LocalListIndex,
} from '../ports/list-store.js';
import { ListIndexes } from './list-indexes.js';

/** Notes and write times, which lookups do not need. */
type EntryDetails = Pick<ListEntry, 'note' | 'updatedAt'>;

/**
 * Lists in memory only: the adapter for tests and tools, and the reference for the contract.
 * Lookups are synchronous through {@link LocalListIndex}.
 */
export class MemoryListStore implements ListStore, LocalListIndex {
  readonly indexes: ListIndexes;
  readonly #details = new Map<string, Map<string, EntryDetails>>();

  constructor(options: { now?: () => number } = {}) {
    this.indexes = new ListIndexes(options.now);
  }

  contains(tenantId: string, list: string, value: unknown): boolean {
    return this.indexes.contains(tenantId, list, value);
  }

  names(tenantId: string): readonly string[] {
    return this.indexes.names(tenantId);
  }

  async lists(tenantId: string): Promise<ListDefinition[]> {
    return this.indexes.definitions(tenantId);
  }

  async list(tenantId: string, name: string): Promise<ListDefinition | undefined> {
    return this.indexes.get(tenantId, name)?.definition;
  }

  async putList(definition: ListDefinition): Promise<void> {
    const before = this.indexes.get(definition.tenantId, definition.name)?.index;
    const after = this.indexes.define(definition).index;
    if (before !== after) this.#details.delete(key(definition.tenantId, definition.name));
  }

  async deleteList(tenantId: string, name: string): Promise<boolean> {
    this.#details.delete(key(tenantId, name));
    return this.indexes.remove(tenantId, name);
  }

  async putEntries(tenantId: string, name: string, entries: readonly ListEntry[]): Promise<ListWriteResult> {
    const list = this.indexes.get(tenantId, name);
    if (list === undefined) throw new Error(`no list '${name}'`);
    const now = this.indexes.now();
    let details = this.#details.get(key(tenantId, name));
    if (details === undefined) {
      details = new Map();
      this.#details.set(key(tenantId, name), details);
    }
    let added = 0;
    for (const entry of entries) {
      if (list.index.set(entry.value, entry.expiresAt, now)) added++;
      details.set(entry.value, { note: entry.note, updatedAt: entry.updatedAt });
    }
    return { added, updated: entries.length - added };
  }

  async deleteEntry(tenantId: string, name: string, value: string): Promise<boolean> {
    this.#details.get(key(tenantId, name))?.delete(value);
    return this.indexes.get(tenantId, name)?.index.delete(value) ?? false;
  }

  async entries(
    tenantId: string,
    name: string,
    page: { after?: string; limit: number },
  ): Promise<ListEntry[]> {
    const list = this.indexes.get(tenantId, name);
    const details = this.#details.get(key(tenantId, name));
    if (list === undefined || details === undefined) return [];
    const now = this.indexes.now();
    // Sorted per page: fine for the sizes this adapter is meant for.
    const values = [...details.keys()]
      .filter((value) => (page.after === undefined || value > page.after) && list.index.hasLive(value, now))
      .sort()
      .slice(0, page.limit);
    return values.map((value) => {
      const detail = details.get(value) as EntryDetails;
      return { value, expiresAt: list.index.expiryOf(value), note: detail.note, updatedAt: detail.updatedAt };
    });
  }

  async lookup(tenantId: string, queries: readonly ListQuery[]): Promise<boolean[]> {
    return queries.map((query) => this.indexes.contains(tenantId, query.list, query.value));
  }

  async size(tenantId: string, name: string): Promise<number> {
    return this.indexes.get(tenantId, name)?.index.size ?? 0;
  }

  async deleteTenant(tenantId: string): Promise<void> {
    for (const list of this.indexes.all(tenantId)) this.#details.delete(key(tenantId, list.definition.name));
    this.indexes.removeTenant(tenantId);
  }

  /** Removes up to `budget` expired entries; stores call it on a timer. */
  sweep(budget = 10_000): void {
    this.indexes.sweep(budget, (list, values) => {
      const details = this.#details.get(key(list.definition.tenantId, list.definition.name));
      for (const value of values) details?.delete(value);
    });
  }

  async close(): Promise<void> {}
}

function key(tenantId: string, name: string): string {
  return `${tenantId}\u0000${name}`;
}
