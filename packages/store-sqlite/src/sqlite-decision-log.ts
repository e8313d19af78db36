import {
  closeSync,
  existsSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  unlink,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type {
  DecisionLog,
  DecisionPage,
  DecisionQuery,
  DecisionRecord,
  EventHistory,
  FeedbackRecord,
  ShadowResult,
} from '@vigil/engine';
import { VigilError } from '@vigil/protocol';
import Database from 'better-sqlite3';
import { EventFilter } from './event-filter.js';
import {
  journalHeader,
  parseJournalLine,
  type RecordColumns,
  type WriterRequest,
  type WriterResponse,
} from './sqlite-log-writer.js';

/**
 * The writer's compiled script. Tests run this file from `src/` (as TypeScript), where Node 20
 * cannot start a worker from a `.ts` file, so they use the build in `dist/` (`npm test` builds first).
 */
const writerScript = new URL(
  import.meta.url.endsWith('.ts') ? '../dist/sqlite-log-writer.js' : './sqlite-log-writer.js',
  import.meta.url,
);

/** How far back the event filter reaches: the idempotency window (24 h) and an hour of margin. */
const idempotencyHorizonMs = 25 * 60 * 60 * 1000;

/** Length at which the journal starts afresh, once SQLite has every line of it. */
const journalRotationBytes = 64 * 1024 * 1024;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface SqliteDecisionLogOptions {
  /** File path, or `:memory:` for tests. */
  path: string;
  /**
   * `normal` (default) makes a record durable against a crash of the process (SIGKILL): the
   * committed WAL frames are in the operating system's cache. `full` also fsyncs every batch, to
   * survive a power loss, at a cost in throughput.
   */
  sync?: 'normal' | 'full';
  /** Length at which the journal starts afresh once SQLite has all of it (default 64 MiB). */
  journalRotationBytes?: number;
  /**
   * Most records held in memory while they wait for SQLite (default 20,000). Beyond it, a record
   * waiting is kept as the place of its line in the journal and read back from there when asked
   * for, so that a long store outage does not fill the heap with records.
   */
  memoryRecords?: number;
  /**
   * Most records one spooled batch grows to by merging (default 4,096): once the store is back,
   * the spool goes to SQLite in batches of about this size, and the node's acknowledgement of each
   * is a short piece of work instead of one long stall for the whole outage.
   */
  spoolBatchRecords?: number;
  /**
   * Runs each background write of a batch to SQLite (for a circuit breaker and fault injection):
   * it calls `write` or rejects without calling it; a rejection keeps the batch spooled in the
   * journal as if SQLite had refused it.
   */
  storeWriteGuard?: <T>(write: () => Promise<T>) => Promise<T>;
}

/** Journal lines that SQLite has not taken yet: where they are in the journal, and their records. */
interface SpooledBatch {
  generation: number;
  /** Byte range of the lines in the journal file. */
  from: number;
  to: number;
  records: PendingEntry[];
}

/** A record waiting for SQLite that the node does not hold: where its line is in the journal. */
class JournalRef {
  constructor(
    readonly decisionId: string,
    readonly tenantId: string,
    readonly eventKey: string,
    readonly createdAt: number,
    readonly generation: number,
    readonly offset: number,
    readonly length: number,
  ) {}
}

/** A record in the journal and not yet in SQLite: the record itself, or where to read it. */
type PendingEntry = DecisionRecord | JournalRef;

/** The journal lines of a turn are encoded into a buffer of this size, grown when a turn needs more. */
const lineBufferBytes = 256 * 1024;
/** A line buffer grown beyond this by a turn of large batches is not kept for the next turns. */
const maxKeptLineBuffer = 4 * 1024 * 1024;

/** A journal that a rotation renamed away is `<journal><suffix><generation>` until deleted. */
const retiredSuffix = '.retired-';

/** First and longest wait before spooled batches are offered to SQLite again. */
const retryDelayMs = { first: 100, longest: 5_000 };

interface Pending {
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface Row {
  seq: number;
  decision_id: string;
  tenant_id: string;
  kind: 'decision' | 'event';
  created_at: number;
  verdict: DecisionRecord['verdict'];
  rule_ids: string;
  entities: string;
  body: string;
}

const schema = `
CREATE TABLE IF NOT EXISTS records (
  seq INTEGER PRIMARY KEY,
  decision_id TEXT NOT NULL UNIQUE,
  tenant_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  event_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  verdict TEXT,
  rule_ids TEXT NOT NULL,
  entities TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_event ON records (tenant_id, event_id, kind, created_at);
CREATE INDEX IF NOT EXISTS records_by_time ON records (tenant_id, created_at, seq);
CREATE TABLE IF NOT EXISTS record_entities (
  tenant_id TEXT NOT NULL,
  entity TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, entity, created_at, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS shadow_results (
  tenant_id TEXT NOT NULL,
  decision_id TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shadow_results_by_decision ON shadow_results (tenant_id, decision_id);
CREATE TABLE IF NOT EXISTS feedback (
  id INTEGER PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  label TEXT NOT NULL,
  source TEXT,
  note TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_event ON feedback (tenant_id, event_id);
`;

/**
 * The embedded decision log.
 *
 * An append is durable once its line is in the journal (`<db>.journal`): the records appended in
 * one turn of the event loop are written with one `write(2)` on this thread, which survives a
 * SIGKILL of the process (`sync: 'full'` also fsyncs), and then their promises resolve. The same
 * lines go to the writer thread (`sqlite-log-writer.ts`), which inserts them into SQLite behind
 * the answers and records, in the same transaction, how far into the journal it has come. Until
 * a record is in SQLite this thread serves it from memory, so reads see every appended record. On
 * open, the journal lines SQLite has not taken yet are inserted before anything else happens.
 */
export class SqliteDecisionLog implements DecisionLog, EventHistory {
  readonly #db: Database.Database;
  readonly #writer: Worker;
  readonly #sync: 'normal' | 'full';
  readonly #journalPath: string;
  readonly #rotationBytes: number;
  #journal: number;
  #generation: number;
  #written: number;
  /**
   * This turn's journal lines, encoded as they are appended (`#lineEnds[i]` is where line `i`
   * ends, its newline included), and their records; not yet in the journal. Encoding each JSON
   * text straight into one reused buffer spares the joined string of the turn and its second
   * encoding by `write(2)`'s string path.
   */
  #lines = Buffer.allocUnsafe(lineBufferBytes);
  #linesLength = 0;
  #lineEnds: number[] = [];
  #records: DecisionRecord[] = [];
  #waiting: Pending[] = [];
  #scheduled = false;
  /** Records in the journal and not yet in SQLite, by decision id and by event. */
  readonly #pendingById = new Map<string, PendingEntry>();
  readonly #pendingByEvent = new Map<string, PendingEntry>();
  readonly #memoryRecords: number;
  #closed = false;
  #failure: Error | undefined;
  #nextRequest = 1;
  #idle: (() => void)[] = [];
  readonly #requests = new Map<number, Pending & { records: PendingEntry[] | undefined }>();
  /** Event keys of the last day; until loaded, every lookup of a new event id reads SQLite. */
  readonly #events = new EventFilter({ horizon: idempotencyHorizonMs });
  #eventsLoaded = false;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #storeWriteGuard: (<T>(write: () => Promise<T>) => Promise<T>) | undefined;
  readonly #spoolBatchRecords: number;
  /** Batches SQLite has not taken, in journal order; they are offered again with backoff. */
  #spool: SpooledBatch[] = [];
  #spoolTimer: NodeJS.Timeout | undefined;
  #spoolDelayMs = retryDelayMs.first;
  #lastStoreError: string | undefined;
  /**
   * Journal batches not offered to SQLite yet. While one batch is on its way, the batches of the
   * following turns gather here and go as one when it settles: one message to the writer per
   * writer turn rather than one per event-loop turn (a message costs the answering thread about
   * as much as a small JSON.stringify).
   */
  #outbox: SpooledBatch | undefined;
  #offering = false;

  constructor(options: SqliteDecisionLogOptions) {
    // An in-memory database cannot be shared with the writer thread, so `:memory:` becomes a
    // fresh temporary file that is removed on close.
    this.#temporary = options.path === ':memory:' ? mkdtempSync(join(tmpdir(), 'vigil-log-')) : undefined;
    const path = this.#temporary === undefined ? options.path : join(this.#temporary, 'decisions.db');
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(schema);
    this.#sync = options.sync ?? 'normal';
    this.#journalPath = `${path}.journal`;
    this.#rotationBytes = options.journalRotationBytes ?? journalRotationBytes;
    this.#storeWriteGuard = options.storeWriteGuard;
    this.#spoolBatchRecords = options.spoolBatchRecords ?? 4096;
    this.#memoryRecords = options.memoryRecords ?? 20_000;
    const { generation, written } = this.#recoverJournal();
    this.#generation = generation;
    this.#written = written;
    this.#journal = openSync(this.#journalPath, 'a');
    this.#writer = new Worker(writerScript, {
      workerData: { path, sync: this.#sync, journalPath: this.#journalPath, generation },
    });
    this.#loadEventFilter();
    this.#writer.on('message', (response: WriterResponse) => this.#acknowledge(response));
    this.#writer.on('error', (error) => this.#fail(error));
    this.#writer.on('exit', (code) => {
      if (!this.#closed) this.#fail(new Error(`decision log writer exited with code ${code}`));
    });
  }

  /**
   * Fills the event filter with the keys of the last day's records, a chunk per turn of the event
   * loop so that a long log does not hold up requests; lookups use it once it is complete.
   */
  #loadEventFilter(): void {
    const cutoff = Date.now() - idempotencyHorizonMs;
    const bounds = this.#db.prepare('SELECT MIN(seq) AS low, MAX(seq) AS high FROM records').get() as {
      low: number | null;
      high: number | null;
    };
    if (bounds.low === null || bounds.high === null) {
      this.#eventsLoaded = true;
      return;
    }
    // Records are inserted in arrival order, so seq follows created_at: find the first seq of the
    // day by bisection on the primary key instead of scanning the table.
    const createdAt = this.#db.prepare('SELECT created_at FROM records WHERE seq >= ? ORDER BY seq LIMIT 1');
    let low = bounds.low;
    let high = bounds.high;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      const row = createdAt.get(middle) as { created_at: number } | undefined;
      if (row !== undefined && row.created_at >= cutoff) high = middle;
      else low = middle + 1;
    }
    const chunk = this.#db.prepare(
      'SELECT seq, tenant_id, event_id, kind FROM records WHERE seq >= ? ORDER BY seq LIMIT 20000',
    );
    let from = low;
    const step = () => {
      if (this.#closed) return;
      const rows = chunk.all(from) as {
        seq: number;
        tenant_id: string;
        event_id: string;
        kind: DecisionRecord['kind'];
      }[];
      for (const row of rows) this.#events.add(eventKey(row.tenant_id, row.event_id, row.kind));
      const last = rows.at(-1);
      if (rows.length < 20000 || last === undefined) {
        this.#eventsLoaded = true;
        return;
      }
      from = last.seq + 1;
      setImmediate(step);
    };
    step();
  }

  /**
   * Inserts the journal lines SQLite has not taken yet (after a crash), then starts a new journal
   * generation. Returns the generation and the journal's length.
   */
  #recoverJournal(): { generation: number; written: number } {
    // Journals retired by a rotation hold only lines SQLite has; one the process died before
    // deleting is deleted now.
    const directory = dirname(this.#journalPath);
    const prefix = `${basename(this.#journalPath)}${retiredSuffix}`;
    for (const name of readdirSync(directory)) {
      if (name.startsWith(prefix)) rmSync(join(directory, name), { force: true });
    }
    const meta = (key: string) =>
      (this.#db.prepare('SELECT value FROM log_meta WHERE key = ?').get(key) as { value: number } | undefined)
        ?.value;
    const storedGeneration = meta('journal_generation') ?? 0;
    const storedOffset = meta('journal_offset') ?? 0;
    if (existsSync(this.#journalPath)) {
      const text = readFileSync(this.#journalPath);
      const headerEnd = text.indexOf(10);
      const header =
        headerEnd < 0
          ? undefined
          : (JSON.parse(text.subarray(0, headerEnd).toString()) as { generation: number });
      if (header !== undefined) {
        const from =
          header.generation === storedGeneration ? Math.max(storedOffset, headerEnd + 1) : headerEnd + 1;
        const lastNewline = text.lastIndexOf(10);
        if (lastNewline + 1 > from) {
          const lines = text.subarray(from, lastNewline).toString().split('\n');
          insertRows(this.#db, lines);
        }
      }
    }
    // Everything in the journal is in SQLite now: start a fresh generation.
    const generation = storedGeneration + 1;
    const header = journalHeader(generation);
    const setMeta = this.#db.prepare(
      'INSERT INTO log_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.#db.transaction(() => {
      setMeta.run('journal_generation', generation);
      setMeta.run('journal_offset', Buffer.byteLength(header));
    })();
    writeFileSync(this.#journalPath, header);
    return { generation, written: Buffer.byteLength(header) };
  }

  readonly #temporary: string | undefined;

  /** Statements are prepared once per SQL text; preparing costs more than most queries. */
  #statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  append(record: DecisionRecord, responseJson?: string): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('decision log is closed'));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    // One line per record, the journal's and the writer's: the columns as a JSON array, a tab,
    // then the body as stored. The body is serialised once; the writer splits at the tab, which
    // JSON text without indentation never contains.
    const columns: RecordColumns = [
      record.decisionId,
      record.tenantId,
      record.kind,
      record.event.id,
      record.createdAt,
      record.verdict,
      record.ruleIds,
      record.entities,
    ];
    const head = JSON.stringify(columns);
    let at: number;
    if (responseJson === undefined) {
      const body = JSON.stringify({
        event: record.event,
        response: record.response,
        features: record.features,
      });
      // UTF-8 takes at most 3 bytes per UTF-16 code unit, so this is room enough for the line.
      this.#reserve(3 * (head.length + body.length) + 2);
      at = this.#put(head, this.#linesLength);
      this.#lines[at++] = 0x09;
      at = this.#put(body, at);
    } else {
      // The same text as above, with the response's JSON as the service made it for the answer.
      const event = JSON.stringify(record.event);
      const features = record.features === undefined ? undefined : JSON.stringify(record.features);
      this.#reserve(3 * (head.length + event.length + responseJson.length + (features?.length ?? 0)) + 64);
      at = this.#put(head, this.#linesLength);
      at = this.#put('\t{"event":', at);
      at = this.#put(event, at);
      at = this.#put(',"response":', at);
      at = this.#put(responseJson, at);
      if (features !== undefined) {
        at = this.#put(',"features":', at);
        at = this.#put(features, at);
      }
      this.#lines[at++] = 0x7d; // }
    }
    this.#lines[at++] = 0x0a;
    this.#linesLength = at;
    this.#lineEnds.push(at);
    this.#records.push(record);
    this.#events.add(eventKey(record.tenantId, record.event.id, record.kind));
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#writeJournal());
      }
    });
  }

  /** Records appended and not yet in the journal; those in the journal and not yet in SQLite are durable. */
  queueDepth(): number {
    return this.#records.length;
  }

  /** Encodes `text` into the line buffer at `at` (room made before); returns where it ends. */
  #put(text: string, at: number): number {
    return at + this.#lines.write(text, at, 'utf8');
  }

  /** Makes room for `bytes` more in this turn's line buffer, keeping what it holds. */
  #reserve(bytes: number): void {
    const needed = this.#linesLength + bytes;
    if (needed <= this.#lines.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, 2 * this.#lines.length));
    this.#lines.copy(grown, 0, 0, this.#linesLength);
    this.#lines = grown;
  }

  /** Records durable in the journal that SQLite refused or could not be offered yet. */
  spooled(): number {
    let records = 0;
    for (const batch of this.#spool) records += batch.records.length;
    return records;
  }

  /** The last error SQLite answered a batch with, while batches are spooled. */
  storeError(): string | undefined {
    return this.#spool.length > 0 ? this.#lastStoreError : undefined;
  }

  /** Writes this turn's records to the journal, answers their appends, and hands them to the writer. */
  #writeJournal(): void {
    this.#scheduled = false;
    if (this.#records.length === 0) return;
    const length = this.#linesLength;
    const lineEnds = this.#lineEnds;
    const records = this.#records;
    const waiting = this.#waiting;
    this.#linesLength = 0;
    this.#lineEnds = [];
    this.#records = [];
    this.#waiting = [];
    const from = this.#written;
    try {
      // The buffer is reused once written, which happens before this returns.
      for (let done = 0; done < length; ) done += writeSync(this.#journal, this.#lines, done, length - done);
      // A turn of large batches grew it: it goes back to its usual size rather than staying large.
      if (this.#lines.length > maxKeptLineBuffer) this.#lines = Buffer.allocUnsafe(lineBufferBytes);
      if (this.#sync === 'full') fdatasyncSync(this.#journal);
      this.#written += length;
    } catch (error) {
      for (const pending of waiting) pending.reject(error);
      return;
    }
    // What waits for SQLite: this turn's records, or, past `memoryRecords`, references that
    // replace them in the same array (no one else holds it).
    const entries: PendingEntry[] = records;
    if (this.#pendingById.size + records.length <= this.#memoryRecords) {
      for (const record of records) {
        this.#pendingById.set(record.decisionId, record);
        this.#pendingByEvent.set(eventKey(record.tenantId, record.event.id, record.kind), record);
      }
    } else {
      // SQLite is behind (a store outage): keep where each line is, not the record.
      for (let index = 0; index < records.length; index++) {
        const record = records[index] as DecisionRecord;
        const start = index === 0 ? 0 : (lineEnds[index - 1] as number);
        const key = eventKey(record.tenantId, record.event.id, record.kind);
        const ref = new JournalRef(
          record.decisionId,
          record.tenantId,
          key,
          record.createdAt,
          this.#generation,
          from + start,
          (lineEnds[index] as number) - start - 1,
        );
        entries[index] = ref;
        this.#pendingById.set(record.decisionId, ref);
        this.#pendingByEvent.set(key, ref);
      }
    }
    for (const pending of waiting) pending.resolve();
    this.#offer({ generation: this.#generation, from, to: this.#written, records: entries });
  }

  /** Hands a journal batch to the writer, or adds it to the batch that waits for the one on its way. */
  #offer(batch: SpooledBatch): void {
    const waiting = this.#outbox;
    if (waiting === undefined) this.#outbox = batch;
    else if (waiting.generation === batch.generation && waiting.to === batch.from) {
      waiting.to = batch.to;
      for (const record of batch.records) waiting.records.push(record);
    } else {
      // Not contiguous (a new journal generation): the older batch goes first, on its own.
      this.#outbox = batch;
      this.#deliver(waiting, false);
    }
    if (!this.#offering) this.#offerOutbox();
  }

  #offerOutbox(): void {
    const batch = this.#outbox;
    if (batch === undefined) return;
    this.#outbox = undefined;
    this.#offering = true;
    this.#deliver(batch, false, () => {
      this.#offering = false;
      this.#offerOutbox();
      this.#wakeIdle();
    });
  }

  /**
   * Offers a batch to SQLite. Batches reach it in journal order: while any is spooled, later ones
   * queue behind it, and the writer refuses new batches after a failed one until the spooled ones
   * are in, so the journal offset it stores never passes a line SQLite lacks.
   */
  #deliver(batch: SpooledBatch, retry: boolean, settled?: () => void): void {
    if (this.#spool.length > 0 && !retry) {
      this.#spoolBatch(batch, undefined);
      settled?.();
      return;
    }
    const write = () =>
      this.#request(
        { op: 'records', journal: { generation: batch.generation, from: batch.from, offset: batch.to } },
        batch.records,
      );
    (this.#storeWriteGuard === undefined ? write() : this.#storeWriteGuard(write))
      .then(
        () => {
          this.#spoolDelayMs = retryDelayMs.first;
        },
        (error: unknown) => this.#spoolBatch(batch, error),
      )
      .finally(settled);
  }

  /**
   * Keeps a batch for a later attempt; its lines stay in the journal, which a restart replays. The
   * spool stays in journal order, and a batch that continues its neighbour's byte range is merged
   * into it, up to `spoolBatchRecords` records: during a long outage the spool is a few large
   * batches, not one per event-loop turn, so a retry is a few attempts instead of thousands (each
   * with its own refusal), and keeping the order costs next to nothing.
   */
  #spoolBatch(batch: SpooledBatch, error: unknown): void {
    if (error !== undefined) this.#lastStoreError = error instanceof Error ? error.message : String(error);
    const spool = this.#spool;
    const after = (earlier: SpooledBatch, later: SpooledBatch) =>
      earlier.generation < later.generation ||
      (earlier.generation === later.generation && earlier.from <= later.from);
    const continues = (earlier: SpooledBatch, later: SpooledBatch) =>
      earlier.generation === later.generation &&
      earlier.to === later.from &&
      earlier.records.length + later.records.length <= this.#spoolBatchRecords;
    let at = spool.length;
    while (at > 0 && !after(spool[at - 1] as SpooledBatch, batch)) at -= 1;
    const previous = spool[at - 1];
    let merged: SpooledBatch;
    if (previous !== undefined && continues(previous, batch)) {
      previous.to = batch.to;
      for (const record of batch.records) previous.records.push(record);
      merged = previous;
      at -= 1;
    } else {
      spool.splice(at, 0, batch);
      merged = batch;
    }
    const next = spool[at + 1];
    if (next !== undefined && continues(merged, next)) {
      merged.to = next.to;
      for (const record of next.records) merged.records.push(record);
      spool.splice(at + 1, 1);
    }
    if (this.#spoolTimer !== undefined || this.#closed || this.#failure !== undefined) return;
    this.#spoolTimer = setTimeout(() => this.#retrySpool(), this.#spoolDelayMs);
    this.#spoolTimer.unref();
  }

  #retrySpool(): void {
    this.#spoolTimer = undefined;
    if (this.#closed || this.#failure !== undefined || this.#spool.length === 0) return;
    this.#spoolDelayMs = Math.min(this.#spoolDelayMs * 2, retryDelayMs.longest);
    const batches = this.#spool;
    this.#spool = [];
    for (const batch of batches) this.#deliver(batch, true);
  }

  #request(request: DistributiveOmit<WriterRequest, 'id'>, records?: PendingEntry[]): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextRequest++;
    return new Promise((resolve, reject) => {
      this.#requests.set(id, { resolve, reject, records });
      this.#writer.postMessage({ ...request, id });
    });
  }

  /** A waiting record; one kept as a journal reference is read back from the journal. */
  #recordOf(entry: PendingEntry): DecisionRecord {
    if (!(entry instanceof JournalRef)) return entry;
    // A journal starts afresh only once SQLite has all of it, and a record leaves the pending maps
    // when SQLite has it: a reference always points into the current journal.
    if (entry.generation !== this.#generation) {
      throw new Error(`decision ${entry.decisionId}: its journal generation ${entry.generation} is gone`);
    }
    const bytes = Buffer.alloc(entry.length);
    const descriptor = openSync(this.#journalPath, 'r');
    try {
      readSync(descriptor, bytes, 0, entry.length, entry.offset);
    } finally {
      closeSync(descriptor);
    }
    const row = parseJournalLine(bytes.toString('utf8'));
    return toRecord({
      seq: 0,
      decision_id: row[0],
      tenant_id: row[1],
      kind: row[2] as Row['kind'],
      created_at: row[4],
      verdict: row[5] as Row['verdict'],
      rule_ids: row[6],
      entities: row[7],
      body: row[8],
    });
  }

  #acknowledge(response: WriterResponse): void {
    const pending = this.#requests.get(response.id);
    if (pending === undefined) return;
    this.#requests.delete(response.id);
    if (response.error === undefined) {
      for (const entry of pending.records ?? []) {
        this.#pendingById.delete(entry.decisionId);
        const key =
          entry instanceof JournalRef ? entry.eventKey : eventKey(entry.tenantId, entry.event.id, entry.kind);
        if (this.#pendingByEvent.get(key) === entry) this.#pendingByEvent.delete(key);
      }
      pending.resolve();
      this.#rotateJournal();
    } else {
      pending.reject(new Error(`decision log write failed: ${response.error}`));
    }
    this.#wakeIdle();
  }

  /**
   * Starts the journal afresh once SQLite has every line of a long one: a new file at the same
   * path, the old one renamed away and deleted in the background. Truncating the old file in place
   * made the kernel free its blocks on the event loop: 100-200 ms for a 64-100 MiB journal
   * (measured in the decision-log-down drill), every 64 MiB of decisions.
   */
  #rotateJournal(): void {
    if (this.#pendingById.size > 0 || this.#records.length > 0 || this.#written < this.#rotationBytes) return;
    const retired = `${this.#journalPath}${retiredSuffix}${this.#generation}`;
    this.#generation += 1;
    const header = journalHeader(this.#generation);
    renameSync(this.#journalPath, retired);
    closeSync(this.#journal);
    this.#journal = openSync(this.#journalPath, 'a');
    writeSync(this.#journal, header);
    this.#written = Buffer.byteLength(header);
    unlink(retired, () => {
      // A file left behind (the process died first) is removed on the next open.
    });
  }

  #wakeIdle(): void {
    if ((this.#requests.size > 0 || this.#offering) && this.#failure === undefined) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }

  #fail(error: Error): void {
    this.#failure = error;
    for (const pending of this.#requests.values()) pending.reject(error);
    this.#requests.clear();
    for (const pending of this.#waiting) pending.reject(error);
    this.#waiting = [];
    this.#linesLength = 0;
    this.#lineEnds = [];
    this.#records = [];
    this.#wakeIdle();
  }

  async get(tenantId: string, decisionId: string): Promise<DecisionRecord | undefined> {
    const pending = this.#pendingById.get(decisionId);
    if (pending !== undefined) return pending.tenantId === tenantId ? this.#recordOf(pending) : undefined;
    const row = this.#statement('SELECT * FROM records WHERE tenant_id = ? AND decision_id = ?').get(
      tenantId,
      decisionId,
    ) as Row | undefined;
    if (row === undefined) return undefined;
    const record = toRecord(row);
    const shadows = this.#statement(
      'SELECT body FROM shadow_results WHERE tenant_id = ? AND decision_id = ? ORDER BY rowid',
    ).all(tenantId, decisionId) as { body: string }[];
    if (shadows.length > 0)
      record.shadows = shadows.flatMap((shadow) => JSON.parse(shadow.body) as ShadowResult[]);
    return record;
  }

  recordShadows(tenantId: string, decisionId: string, results: ShadowResult[]): Promise<void> {
    return this.#request({ op: 'shadows', tenantId, decisionId, body: JSON.stringify(results) });
  }

  /** Pages of a tenant's records from `since`, oldest first, by the time index (keyset paging). */
  async scan(
    tenantId: string,
    since: number,
    visit: (records: DecisionRecord[]) => Promise<void>,
  ): Promise<void> {
    await this.#drain();
    const statement = this.#statement(
      `SELECT * FROM records WHERE tenant_id = ? AND (created_at, seq) > (?, ?)
         ORDER BY created_at, seq LIMIT 1000`,
    );
    let after: [number, number] = [since, -1];
    for (;;) {
      const rows = statement.all(tenantId, after[0], after[1]) as Row[];
      if (rows.length === 0) return;
      await visit(rows.map(toRecord));
      const last = rows[rows.length - 1] as Row;
      after = [last.created_at, last.seq];
    }
  }

  async findByEventId(
    tenantId: string,
    eventId: string,
    since: number,
    kind: DecisionRecord['kind'],
  ): Promise<DecisionRecord | undefined> {
    const key = eventKey(tenantId, eventId, kind);
    const pending = this.#pendingByEvent.get(key);
    if (pending !== undefined && pending.createdAt >= since) return this.#recordOf(pending);
    // An id the filter has certainly not seen in the last day needs no index lookup.
    if (this.#eventsLoaded && since >= Date.now() - idempotencyHorizonMs && !this.#events.mightContain(key)) {
      return undefined;
    }
    const row = this.#statement(
      `SELECT * FROM records WHERE tenant_id = ? AND event_id = ? AND kind = ? AND created_at >= ?
         ORDER BY created_at DESC LIMIT 1`,
    ).get(tenantId, eventId, kind, since) as Row | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  async search(query: DecisionQuery): Promise<DecisionPage> {
    // SQLite takes records behind the journal, and the writer indexes entities behind the records:
    // a search first waits for both, so it sees every appended record.
    await this.#drain();
    if (query.entity !== undefined) await this.#request({ op: 'sync_index' });
    const where: string[] = [];
    const params: unknown[] = [];
    let from = 'records r';
    // With an entity the entity index drives the scan; otherwise the time index does.
    const time = query.entity !== undefined ? 'e' : 'r';
    if (query.entity !== undefined) {
      from = 'record_entities e JOIN records r ON r.seq = e.seq';
      where.push('e.tenant_id = ?', 'e.entity = ?');
      params.push(query.tenantId, query.entity);
    }
    where.push('r.tenant_id = ?');
    params.push(query.tenantId);
    if (query.verdict !== undefined) {
      where.push('r.verdict = ?');
      params.push(query.verdict);
    }
    if (query.rule !== undefined) {
      where.push('EXISTS (SELECT 1 FROM json_each(r.rule_ids) WHERE value = ?)');
      params.push(query.rule);
    }
    if (query.from !== undefined) {
      where.push(`${time}.created_at >= ?`);
      params.push(query.from);
    }
    if (query.to !== undefined) {
      where.push(`${time}.created_at < ?`);
      params.push(query.to);
    }
    if (query.cursor !== undefined) {
      const [createdAt, seq] = decodeCursor(query.cursor);
      where.push(`(${time}.created_at, ${time}.seq) < (?, ?)`);
      params.push(createdAt, seq);
    }
    const sql = `SELECT r.* FROM ${from} WHERE ${where.join(' AND ')}
      ORDER BY ${time}.created_at DESC, ${time}.seq DESC LIMIT ?`;
    params.push(query.limit + 1);
    const rows = this.#statement(sql).all(...params) as Row[];
    const page: DecisionPage = { records: rows.slice(0, query.limit).map(toRecord) };
    if (rows.length > query.limit) {
      const last = rows[query.limit - 1] as Row;
      page.nextCursor = encodeCursor(last.created_at, last.seq);
    }
    return page;
  }

  addFeedback(feedback: FeedbackRecord): Promise<void> {
    return this.#request({
      op: 'feedback',
      row: [
        feedback.tenantId,
        feedback.event_id,
        feedback.label,
        feedback.source ?? null,
        feedback.note ?? null,
        feedback.createdAt,
      ],
    });
  }

  async listFeedback(tenantId: string, eventId: string): Promise<FeedbackRecord[]> {
    const rows = this.#statement(
      'SELECT * FROM feedback WHERE tenant_id = ? AND event_id = ? ORDER BY id',
    ).all(tenantId, eventId) as {
      tenant_id: string;
      event_id: string;
      label: 'fraud' | 'legit';
      source: string | null;
      note: string | null;
      created_at: number;
    }[];
    return rows.map((row) => {
      const feedback: FeedbackRecord = {
        tenantId: row.tenant_id,
        event_id: row.event_id,
        label: row.label,
        createdAt: row.created_at,
      };
      if (row.source !== null) feedback.source = row.source;
      if (row.note !== null) feedback.note = row.note;
      return feedback;
    });
  }

  async deleteTenant(tenantId: string): Promise<void> {
    await this.#drain();
    await this.#request({ op: 'delete_tenant', tenantId });
  }

  /** Resolves once every queued and in-flight write has committed or failed. */
  async #drain(): Promise<void> {
    while (this.#failure === undefined) {
      if (this.#records.length > 0) this.#writeJournal();
      if (!this.#offering) this.#offerOutbox();
      if (this.#requests.size === 0 && !this.#offering) break;
      await new Promise<void>((resolve) => this.#idle.push(resolve));
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // One last offer of the spooled batches (the store may be back); what it still refuses stays
    // in the journal, and the next open inserts it.
    clearTimeout(this.#spoolTimer);
    this.#retrySpool();
    await this.#drain();
    this.#closed = true;
    clearTimeout(this.#spoolTimer);
    await this.#writer.terminate();
    closeSync(this.#journal);
    this.#db.close();
    if (this.#temporary !== undefined) rmSync(this.#temporary, { recursive: true, force: true });
  }
}

function toRecord(row: Row): DecisionRecord {
  const body = JSON.parse(row.body) as Pick<DecisionRecord, 'event' | 'response' | 'features'>;
  const record: DecisionRecord = {
    decisionId: row.decision_id,
    tenantId: row.tenant_id,
    kind: row.kind,
    createdAt: row.created_at,
    event: body.event,
    verdict: row.verdict,
    response: body.response,
    ruleIds: JSON.parse(row.rule_ids) as string[],
    entities: JSON.parse(row.entities) as string[],
  };
  if (body.features !== undefined && body.features !== null) record.features = body.features;
  return record;
}

function encodeCursor(createdAt: number, seq: number): string {
  return Buffer.from(`${createdAt}:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): [number, number] {
  const match = /^(\d{1,16}):(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (match === null) {
    throw new VigilError('invalid_request', {
      details: [{ path: 'cursor', message: 'is not a cursor from this API' }],
    });
  }
  return [Number(match[1]), Number(match[2])];
}

function eventKey(tenantId: string, eventId: string, kind: DecisionRecord['kind']): string {
  return `${kind}\u0000${tenantId}\u0000${eventId}`;
}

/** Inserts journal lines into `records` (used on open; the writer does the same while running). */
function insertRows(db: Database.Database, lines: string[]): void {
  const insert = db.prepare(
    `INSERT OR IGNORE INTO records (decision_id, tenant_id, kind, event_id, created_at, verdict, rule_ids, entities, body)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  db.transaction(() => {
    for (const line of lines) {
      if (line === '') continue;
      const row = parseJournalLine(line);
      insert.run(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8]);
    }
  })();
}
