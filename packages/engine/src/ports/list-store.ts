import type { ListKind, ListValueType } from '../lists/list-values.js';

/** A tenant's named list. */
export interface ListDefinition {
  tenantId: string;
  name: string;
  kind: ListKind;
  type: ListValueType;
  description: string | null;
  createdAt: string;
  updatedAt: string;
}

/** One entry as stored: its normalised value, expiry (epoch ms, null for none) and note. */
export interface ListEntry {
  value: string;
  expiresAt: number | null;
  note: string | null;
  /** Epoch ms of the last write of this entry. */
  updatedAt: number;
}

/** One `in_list` question: is `value` in the tenant's list `list`? */
export interface ListQuery {
  list: string;
  value: unknown;
}

/** What a bulk write did. Entries are upserted by normalised value. */
export interface ListWriteResult {
  added: number;
  updated: number;
}

/**
 * Durable lists and their entries (SPEC §1 "list").
 *
 * Contract:
 * - Entry values are stored normalised for the list's type (see `normaliseListValue`); callers
 *   normalise before writing, the store does not check again.
 * - A write is durable and visible to `lookup` on this node when its promise resolves.
 * - An entry whose `expiresAt` is at or before the store's clock never matches and is never
 *   exported; it is removed some time later.
 * - `lookup` answers every query of a decision in one call (one round trip for a networked
 *   adapter), in query order; a query naming an unknown list is false.
 * - Tenants never see each other's lists: every call is scoped by `tenantId`.
 */
export interface ListStore {
  /** The tenant's lists, by name. */
  lists(tenantId: string): Promise<ListDefinition[]>;
  list(tenantId: string, name: string): Promise<ListDefinition | undefined>;
  /** Creates or replaces a definition; changing the type of a list with entries is the caller's check. */
  putList(definition: ListDefinition): Promise<void>;
  /** Deletes a list and all its entries; false when there was none. */
  deleteList(tenantId: string, name: string): Promise<boolean>;
  /** Upserts entries (already normalised, no duplicate values) into an existing list. */
  putEntries(tenantId: string, name: string, entries: readonly ListEntry[]): Promise<ListWriteResult>;
  /** Removes one entry by normalised value; false when there was none. */
  deleteEntry(tenantId: string, name: string, value: string): Promise<boolean>;
  /** Live entries in value order, after `after` (exclusive), at most `limit`. */
  entries(tenantId: string, name: string, page: { after?: string; limit: number }): Promise<ListEntry[]>;
  /** Membership of each query's value, in order. */
  lookup(tenantId: string, queries: readonly ListQuery[]): Promise<boolean[]>;
  /** Number of entries held in a list (expired ones not yet removed included). */
  size(tenantId: string, name: string): Promise<number>;
  /** Removes all of a tenant's lists. */
  deleteTenant(tenantId: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Synchronous membership reads, for stores that keep every list in this process's memory (the
 * embedded default). The decision path uses it to answer `in_list` without a round trip.
 */
export interface LocalListIndex {
  /** Whether `value` matches a live entry of the tenant's list; false for an unknown list. */
  contains(tenantId: string, list: string, value: unknown): boolean;
  /** Names of the tenant's lists, for the rule checker. */
  names(tenantId: string): readonly string[];
}
