import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import {
  type ListDefinition,
  type ListEntry,
  ListIndexes,
  type ListQuery,
  type ListStore,
  type ListWriteResult,
  type LocalListIndex,
} from '@vigil/engine';
import Database from 'better-sqlite3';

const schema = `
CREATE TABLE IF NOT EXISTS lists (
  id INTEGER PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS entries (
  list_id INTEGER NOT NULL,
  value TEXT NOT NULL,
  expires_at INTEGER,
  note TEXT,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (list_id, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
`;

export interface SqliteListStoreOptions {
  /** The database file, `lists.db` in the data dir. */
  path: string;
  now?: () => number;
  /** How often expired entries are swept from memory and disk; 0 for never (tests sweep by hand). */
  sweepIntervalMs?: number;
  /** Rows per transaction of a bulk write; between two, other requests get the event loop. */
  chunkSize?: number;
}

type Row = [listId: number, value: string, expiresAt: number | null];

/** Rows per INSERT statement of a bulk write: one native call per 100 rows instead of per row. */
const rowsPerStatement = 100;
const upsertSql = (rows: number) =>
  `INSERT INTO entries (list_id, value, expires_at, note, updated_at) VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?)').join(', ')} ON CONFLICT (list_id, value) DO UPDATE SET expires_at = excluded.expires_at, note = excluded.note, updated_at = excluded.updated_at`;

/**
 * The embedded list store: SQLite for durability, every list loaded at start into the in-memory
 * index that serves lookups. A write goes to SQLite first, then to memory, so it is live on this
 * node when its promise resolves.
 *
 * Bulk writes are split into transactions of `chunkSize` rows with the event loop released
 * between them, so a 1M-entry import does not stall decisions for seconds; an import that fails
 * half-way leaves the chunks before the failure applied (entries are upserts, so retrying is safe).
 */
export class SqliteListStore implements ListStore, LocalListIndex {
  readonly indexes: ListIndexes;
  readonly #db: Database.Database;
  /** List ids by tenant and name. */
  readonly #ids = new Map<string, number>();
  readonly #chunkSize: number;
  readonly #sweeper: NodeJS.Timeout | undefined;
  readonly #statements;

  constructor(options: SqliteListStoreOptions) {
    this.indexes = new ListIndexes(options.now);
    this.#chunkSize = options.chunkSize ?? 50_000;
    this.#db = new Database(options.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    // Bulk imports touch many B-tree pages; a larger cache keeps them from being re-read.
    this.#db.pragma('cache_size = -65536');
    this.#db.exec(schema);
    this.#statements = {
      upsertList: this.#db.prepare(
        'INSERT INTO lists (tenant_id, name, body) VALUES (?, ?, ?) ON CONFLICT (tenant_id, name) DO UPDATE SET body = excluded.body RETURNING id',
      ),
      deleteList: this.#db.prepare('DELETE FROM lists WHERE id = ?'),
      clearList: this.#db.prepare('DELETE FROM entries WHERE list_id = ?'),
      upsertEntry: this.#db.prepare(upsertSql(1)),
      upsertEntries: this.#db.prepare(upsertSql(rowsPerStatement)),
      deleteEntry: this.#db.prepare('DELETE FROM entries WHERE list_id = ? AND value = ?'),
      page: this.#db.prepare(
        'SELECT value, expires_at AS expiresAt, note, updated_at AS updatedAt FROM entries WHERE list_id = ? AND value > ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY value LIMIT ?',
      ),
      sweep: this.#db.prepare(
        'DELETE FROM entries WHERE (list_id, value) IN (SELECT list_id, value FROM entries WHERE expires_at <= ? LIMIT ?)',
      ),
    };
    this.#load();
    const interval = options.sweepIntervalMs ?? 1000;
    if (interval > 0) {
      this.#sweeper = setInterval(() => this.sweep(), interval);
      this.#sweeper.unref();
    }
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
    const before = this.indexes.get(definition.tenantId, definition.name)?.definition;
    this.#db.transaction(() => {
      const { id } = this.#statements.upsertList.get(
        definition.tenantId,
        definition.name,
        JSON.stringify(definition),
      ) as { id: number };
      // A list whose type changes starts empty: its values were checked for the old type.
      if (before !== undefined && before.type !== definition.type) this.#statements.clearList.run(id);
      this.#ids.set(key(definition.tenantId, definition.name), id);
    })();
    this.indexes.define(definition);
  }

  async deleteList(tenantId: string, name: string): Promise<boolean> {
    const id = this.#ids.get(key(tenantId, name));
    if (id === undefined) return false;
    this.#db.transaction(() => {
      this.#statements.clearList.run(id);
      this.#statements.deleteList.run(id);
    })();
    this.#ids.delete(key(tenantId, name));
    return this.indexes.remove(tenantId, name);
  }

  async putEntries(tenantId: string, name: string, entries: readonly ListEntry[]): Promise<ListWriteResult> {
    let added = 0;
    for (let start = 0; start < entries.length; start += this.#chunkSize) {
      if (start > 0) await yieldToEventLoop();
      const id = this.#ids.get(key(tenantId, name));
      const list = this.indexes.get(tenantId, name);
      if (id === undefined || list === undefined) throw new Error(`no list '${name}'`);
      // In key order, each chunk's inserts walk the B-tree pages in order instead of at random.
      const chunk = entries.slice(start, start + this.#chunkSize).sort(byValue);
      const { upsertEntry, upsertEntries } = this.#statements;
      this.#db.transaction(() => {
        const parameters: unknown[] = new Array(rowsPerStatement * 5);
        let at = 0;
        for (; at + rowsPerStatement <= chunk.length; at += rowsPerStatement) {
          for (let row = 0; row < rowsPerStatement; row++) {
            const entry = chunk[at + row] as ListEntry;
            const base = row * 5;
            parameters[base] = id;
            parameters[base + 1] = entry.value;
            parameters[base + 2] = entry.expiresAt;
            parameters[base + 3] = entry.note;
            parameters[base + 4] = entry.updatedAt;
          }
          upsertEntries.run(parameters);
        }
        for (; at < chunk.length; at++) {
          const entry = chunk[at] as ListEntry;
          upsertEntry.run(id, entry.value, entry.expiresAt, entry.note, entry.updatedAt);
        }
      })();
      const now = this.indexes.now();
      for (const entry of chunk) if (list.index.set(entry.value, entry.expiresAt, now)) added++;
    }
    return { added, updated: entries.length - added };
  }

  async deleteEntry(tenantId: string, name: string, value: string): Promise<boolean> {
    const id = this.#ids.get(key(tenantId, name));
    if (id === undefined) return false;
    const changes = this.#statements.deleteEntry.run(id, value).changes;
    const held = this.indexes.get(tenantId, name)?.index.delete(value) ?? false;
    return changes > 0 || held;
  }

  async entries(
    tenantId: string,
    name: string,
    page: { after?: string; limit: number },
  ): Promise<ListEntry[]> {
    const id = this.#ids.get(key(tenantId, name));
    if (id === undefined) return [];
    return this.#statements.page.all(id, page.after ?? '', this.indexes.now(), page.limit) as ListEntry[];
  }

  async lookup(tenantId: string, queries: readonly ListQuery[]): Promise<boolean[]> {
    return queries.map((query) => this.indexes.contains(tenantId, query.list, query.value));
  }

  async size(tenantId: string, name: string): Promise<number> {
    return this.indexes.get(tenantId, name)?.index.size ?? 0;
  }

  async deleteTenant(tenantId: string): Promise<void> {
    for (const list of this.indexes.all(tenantId)) await this.deleteList(tenantId, list.definition.name);
    this.indexes.removeTenant(tenantId);
  }

  /** Removes a batch of expired entries from memory and from disk; runs on a timer. */
  sweep(budget = 20_000): void {
    this.indexes.sweep(budget);
    this.#statements.sweep.run(this.indexes.now(), budget);
  }

  async close(): Promise<void> {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#db.close();
  }

  #load(): void {
    const byId = new Map<number, ReturnType<ListIndexes['define']>>();
    for (const row of this.#db.prepare('SELECT id, body FROM lists').all() as {
      id: number;
      body: string;
    }[]) {
      const definition = JSON.parse(row.body) as ListDefinition;
      this.#ids.set(key(definition.tenantId, definition.name), row.id);
      byId.set(row.id, this.indexes.define(definition));
    }
    const now = this.indexes.now();
    const rows = this.#db
      .prepare('SELECT list_id, value, expires_at FROM entries WHERE expires_at IS NULL OR expires_at > ?')
      .raw()
      .iterate(now) as IterableIterator<Row>;
    for (const [listId, value, expiresAt] of rows) byId.get(listId)?.index.set(value, expiresAt, now);
  }
}

function byValue(a: ListEntry, b: ListEntry): number {
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

function key(tenantId: string, name: string): string {
  return `${tenantId}\u0000${name}`;
}
