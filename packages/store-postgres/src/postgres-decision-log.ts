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
import type pg from 'pg';
import { Journal, type JournalPosition } from './journal.js';
import { migrate } from './migrations.js';
import { createPool, type PostgresSettings } from './pg-pool.js';

const dayMs = 24 * 60 * 60 * 1000;

/** First and longest wait before undelivered records are offered to PostgreSQL again. */
const retryDelayMs = { first: 100, longest: 5_000 };

export interface PostgresDecisionLogOptions {
  /** A pool on which this log runs (it applies the migrations itself before its first delivery). */
  pool: pg.Pool;
  /** With `ownsPool`, `close` ends the pool; otherwise the caller, who may share it, does. */
  ownsPool?: boolean;
  /** The local journal file (on this node's disk), for durability before PostgreSQL has a record. */
  journalPath: string;
  /** `full` fsyncs every journal write (survives a power loss); `normal` (default) survives SIGKILL. */
  sync?: 'normal' | 'full';
  /** Length at which the journal starts afresh once PostgreSQL has all of it (default 64 MiB). */
  journalRotationBytes?: number;
  /** Most records sent in one INSERT (default 2 000); one turn's records always go together. */
  maxBatchRecords?: number;
  /**
   * Longest time a journalled record waits for more to go to PostgreSQL with it, ms (default 50;
   * 0: each batch is sent as soon as the previous one is in). The answers never wait for it (the
   * journal holds the records), nor do this node's reads (they are served from memory, or send
   * what waits first); it is how much later another node finds an event id in PostgreSQL.
   */
  deliveryDelayMs?: number;
  /** Daily partitions created ahead of today (default 2). */
  partitionsAhead?: number;
  /** Days of partitions kept; older ones are dropped daily. Default: kept forever. */
  retentionDays?: number;
  /** Client-side limit of an idempotency lookup (`findByEventId`), which is on the answer's path (default 250 ms). */
  lookupTimeoutMs?: number;
  /**
   * Runs each background delivery of a batch (for a circuit breaker and fault injection): it calls
   * `write` or rejects without calling it; a rejection keeps the batch spooled as if PostgreSQL had
   * refused it.
   */
  storeWriteGuard?: <T>(write: () => Promise<T>) => Promise<T>;
  /** Told about failed deliveries and maintenance; the log keeps retrying. */
  onError?: (error: Error) => void;
  /** Clock for partition maintenance (tests). */
  now?: () => number;
}

/** An idempotency lookup waiting for the turn's query. */
interface Lookup {
  tenantId: string;
  eventId: string;
  kind: DecisionRecord['kind'];
  since: number;
  resolve: (record: DecisionRecord | undefined) => void;
}

/** Most lookups sent in one query. */
const maxLookupsPerQuery = 500;

/**
 * The idempotency lookups of one turn: per lookup, the newest matching record (as a single lookup
 * would find it), by its index in the arrays.
 *
 * The matching rows are chosen in a subquery of their own (`OFFSET 0` keeps the planner from
 * merging it into the ordered `LIMIT 1`), so that they are found with `decisions_by_event`. As a
 * named statement this gets a generic plan, made on a connection's first lookups, often while
 * today's partition is still empty; with `ORDER BY ... LIMIT 1` over the whole table, that plan
 * walked `decisions_by_time` backwards and filtered on the event id, which is cheap on an empty
 * table and reads every row of the tenant's day once the day fills up. Few rows match an event
 * id (usually none or one), so sorting them is nothing.
 */
export const findByEventIdsSql = `SELECT q.i, d.body
  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
         WITH ORDINALITY AS q(tenant_id, event_id, kind, since, i)
  CROSS JOIN LATERAL (
    SELECT body FROM (
      SELECT body, created_at, seq FROM decisions
       WHERE tenant_id = q.tenant_id AND event_id = q.event_id AND kind = q.kind
         AND created_at >= q.since
      OFFSET 0) matching
     ORDER BY created_at DESC, seq DESC LIMIT 1) d`;

/** One turn's records, written to the journal together, and where the journal ended after them. */
interface Batch {
  records: DecisionRecord[];
  lines: string[];
  end: JournalPosition;
  /** When it was queued (`Date.now()`; 0 for records replayed from the journal, sent at once). */
  queuedAt: number;
}

/**
 * The decision log in PostgreSQL, written behind a local journal.
 *
 * `append` writes the records of one event-loop turn to the local journal with one `write(2)` and
 * resolves: the answer never waits for PostgreSQL. One background loop delivers the journal's
 * batches in order with multi-row INSERTs (`ON CONFLICT DO NOTHING`; a batch waits up to
 * `deliveryDelayMs` to go with later ones), marks each delivered, and
 * while PostgreSQL refuses keeps them (the spool) and retries with backoff. Records not yet
 * delivered are served from memory by `get` and `findByEventId`. Opening replays the journal past
 * its delivery mark; PostgreSQL ignores what it already had, so nothing is lost or doubled.
 *
 * Tables are partitioned by UTC day of `created_at`. Every copy of a record (first delivery,
 * retry, replay) carries the `createdAt` fixed when the decision was made, so the primary key
 * `(decision_id, created_at)` is unique per decision id.
 */
export class PostgresDecisionLog implements DecisionLog, EventHistory {
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly #journal: Journal;
  readonly #maxBatchRecords: number;
  readonly #deliveryDelayMs: number;
  readonly #partitionsAhead: number;
  readonly #retentionDays: number | undefined;
  readonly #lookupTimeoutMs: number;
  readonly #storeWriteGuard: (<T>(write: () => Promise<T>) => Promise<T>) | undefined;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #now: () => number;
  /** This turn's records and journal lines, not in the journal yet. */
  #lines: string[] = [];
  #records: DecisionRecord[] = [];
  #waiting: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  #scheduled = false;
  /** Batches in the journal and not in PostgreSQL, in journal order. */
  #queue: Batch[] = [];
  /** Records in `#queue`. */
  #queuedRecords = 0;
  /** Runs the delivery once the oldest queued batch has waited `deliveryDelayMs`. */
  #gatherTimer: NodeJS.Timeout | undefined;
  /** Callers waiting for everything queued to be delivered: no batch waits for more meanwhile. */
  #flushing = 0;
  readonly #pendingById = new Map<string, DecisionRecord>();
  readonly #pendingByEvent = new Map<string, DecisionRecord>();
  #delivering = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelayMs: number = retryDelayMs.first;
  #lastStoreError: string | undefined;
  #settled: (() => void)[] = [];
  #migrated = false;
  #migrating: Promise<void> | undefined;
  /** UTC days (days since the epoch) whose partitions are known to exist. */
  readonly #partitions = new Set<number>();
  #maintenanceTimer: NodeJS.Timeout | undefined;
  /** The maintenance run in progress, which `close` lets finish. */
  #maintenance: Promise<void> | undefined;
  /** Until when idempotency lookups skip PostgreSQL, after one failed. */
  #lookupsPausedUntil = 0;
  /** This turn's idempotency lookups, sent together in one query. */
  #lookups: Lookup[] = [];
  #closed = false;

  constructor(options: PostgresDecisionLogOptions) {
    this.#pool = options.pool;
    this.#ownsPool = options.ownsPool ?? false;
    this.#maxBatchRecords = options.maxBatchRecords ?? 2_000;
    this.#deliveryDelayMs = options.deliveryDelayMs ?? 50;
    this.#partitionsAhead = options.partitionsAhead ?? 2;
    this.#retentionDays = options.retentionDays;
    this.#lookupTimeoutMs = options.lookupTimeoutMs ?? 250;
    this.#storeWriteGuard = options.storeWriteGuard;
    this.#onError = options.onError;
    this.#now = options.now ?? Date.now;
    const opened = Journal.open({
      path: options.journalPath,
      ...(options.sync !== undefined && { sync: options.sync }),
      ...(options.journalRotationBytes !== undefined && { rotationBytes: options.journalRotationBytes }),
    });
    this.#journal = opened.journal;
    const { lines, end } = opened.undelivered;
    const kept = lines.filter((line) => line !== '');
    if (kept.length > 0) {
      const records = kept.map((line) => JSON.parse(line) as DecisionRecord);
      this.#remember(records);
      this.#enqueue({ records, lines: kept, end, queuedAt: 0 });
    }
    this.#scheduleMaintenance(0);
    this.#deliverSoon();
  }

  /**
   * A log with its own pool. PostgreSQL need not be up: records are journalled and delivered (and
   * the migrations applied) once it is.
   */
  static open(
    settings: PostgresSettings,
    options: Omit<PostgresDecisionLogOptions, 'pool' | 'ownsPool'>,
  ): PostgresDecisionLog {
    return new PostgresDecisionLog({ ...options, pool: createPool(settings), ownsPool: true });
  }

  append(record: DecisionRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('decision log is closed'));
    this.#lines.push(JSON.stringify(record));
    this.#records.push(record);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#writeJournal());
      }
    });
  }

  /** Records appended and not yet in the journal; those in the journal are durable. */
  queueDepth(): number {
    return this.#lines.length;
  }

  /** Records durable in the journal and not yet in PostgreSQL. */
  spooled(): number {
    return this.#pendingById.size;
  }

  /** The last error PostgreSQL answered a delivery with, while records wait for it. */
  storeError(): string | undefined {
    return this.#queue.length > 0 ? this.#lastStoreError : undefined;
  }

  /** Writes this turn's records to the journal with one write, answers their appends, queues them. */
  #writeJournal(): void {
    this.#scheduled = false;
    if (this.#lines.length === 0) return;
    const lines = this.#lines;
    const records = this.#records;
    const waiting = this.#waiting;
    this.#lines = [];
    this.#records = [];
    this.#waiting = [];
    let end: JournalPosition;
    try {
      end = this.#journal.append(lines.join('\n'));
    } catch (error) {
      for (const pending of waiting) pending.reject(error);
      return;
    }
    this.#remember(records);
    for (const pending of waiting) pending.resolve();
    this.#enqueue({ records, lines, end, queuedAt: Date.now() });
    this.#deliverSoon();
  }

  #remember(records: DecisionRecord[]): void {
    for (const record of records) {
      // A second record with a pending decision id is ignored, as PostgreSQL will ignore it.
      if (this.#pendingById.has(record.decisionId)) continue;
      this.#pendingById.set(record.decisionId, record);
      this.#pendingByEvent.set(eventKey(record.tenantId, record.event.id, record.kind), record);
    }
  }

  #forget(records: DecisionRecord[]): void {
    for (const record of records) {
      if (this.#pendingById.get(record.decisionId) === record) this.#pendingById.delete(record.decisionId);
      const key = eventKey(record.tenantId, record.event.id, record.kind);
      if (this.#pendingByEvent.get(key) === record) this.#pendingByEvent.delete(key);
    }
  }

  #enqueue(batch: Batch): void {
    this.#queue.push(batch);
    this.#queuedRecords += batch.records.length;
  }

  /**
   * Starts the delivery loop, at once or once the oldest queued batch has waited `deliveryDelayMs`:
   * under load, one INSERT then carries the records of many turns, and PostgreSQL parses, plans,
   * executes and commits one statement for them instead of one per turn or two.
   */
  #deliverSoon(): void {
    if (this.#delivering || this.#retryTimer !== undefined || this.#queue.length === 0) return;
    const wait = this.#gatherWait();
    if (wait > 0) {
      if (this.#gatherTimer === undefined) {
        this.#gatherTimer = setTimeout(() => {
          this.#gatherTimer = undefined;
          this.#deliverSoon();
        }, wait);
        this.#gatherTimer.unref();
      }
      return;
    }
    clearTimeout(this.#gatherTimer);
    this.#gatherTimer = undefined;
    void this.#deliver();
  }

  /** How much longer the queued records should wait for more before they are sent, ms (0: now). */
  #gatherWait(): number {
    const oldest = this.#queue[0];
    if (oldest === undefined || this.#flushing > 0 || this.#closed) return 0;
    if (this.#queuedRecords >= this.#maxBatchRecords) return 0;
    return Math.max(0, oldest.queuedAt + this.#deliveryDelayMs - Date.now());
  }

  /**
   * The one delivery loop: batches go to PostgreSQL strictly in journal order, one INSERT at a
   * time, taking every batch queued meanwhile (up to `maxBatchRecords`). A failure stops the loop
   * and retries later with backoff; the journal's mark never passes a record PostgreSQL lacks.
   */
  async #deliver(): Promise<void> {
    this.#delivering = true;
    let failed = false;
    try {
      // Batches queued during an INSERT go next, unless they should wait for more.
      while (this.#queue.length > 0 && this.#gatherWait() === 0) {
        let count = 0;
        let take = 0;
        while (take < this.#queue.length && (take === 0 || count < this.#maxBatchRecords)) {
          const next = this.#queue[take] as Batch;
          if (take > 0 && count + next.records.length > this.#maxBatchRecords) break;
          count += next.records.length;
          take += 1;
        }
        const batches = this.#queue.slice(0, take);
        const write = () => this.#insert(batches);
        try {
          await (this.#storeWriteGuard === undefined ? write() : this.#storeWriteGuard(write));
        } catch (error) {
          failed = true;
          this.#lastStoreError = error instanceof Error ? error.message : String(error);
          this.#onError?.(error instanceof Error ? error : new Error(String(error)));
          this.#lookupsPausedUntil = Date.now() + 1_000;
          if (!this.#closed) {
            this.#retryTimer = setTimeout(() => {
              this.#retryTimer = undefined;
              this.#deliverSoon();
            }, this.#retryDelayMs);
            this.#retryTimer.unref();
            this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, retryDelayMs.longest);
          }
          return;
        }
        this.#retryDelayMs = retryDelayMs.first;
        this.#queue.splice(0, take);
        this.#queuedRecords -= count;
        for (const batch of batches) this.#forget(batch.records);
        try {
          this.#journal.markDelivered((batches[batches.length - 1] as Batch).end);
        } catch (error) {
          // The mark only saves replays after a restart, which PostgreSQL ignores.
          this.#onError?.(error instanceof Error ? error : new Error(String(error)));
        }
      }
    } finally {
      this.#delivering = false;
      const settled = this.#settled;
      this.#settled = [];
      for (const resolve of settled) resolve();
      // Records left waiting for more: their timer (after a failure, the retry timer's turn).
      if (!failed) this.#deliverSoon();
    }
  }

  /** Applies the migrations once, before the first use of the tables (PostgreSQL may be down at start). */
  async #ready(): Promise<void> {
    if (this.#migrated) return;
    this.#migrating ??= migrate(this.#pool).then(
      () => {
        this.#migrated = true;
      },
      (error: unknown) => {
        this.#migrating = undefined;
        throw error;
      },
    );
    await this.#migrating;
  }

  async #insert(batches: Batch[]): Promise<void> {
    await this.#ready();
    const rows: unknown[] = [];
    const days = new Set<number>();
    for (const batch of batches) {
      for (let index = 0; index < batch.records.length; index++) {
        const record = batch.records[index] as DecisionRecord;
        days.add(Math.floor(record.createdAt / dayMs));
        rows.push({
          decision_id: clean(record.decisionId),
          created_at: record.createdAt,
          tenant_id: clean(record.tenantId),
          kind: record.kind,
          event_id: clean(record.event.id),
          verdict: record.verdict,
          rule_ids: record.ruleIds.map(clean),
          entities: record.entities.map(clean),
          body: batch.lines[index],
          ord: rows.length,
        });
      }
    }
    await this.#ensurePartitions(days);
    // Entity rows only for the decisions this statement inserted (a record PostgreSQL already had
    // is skipped whole by ON CONFLICT), each with the fresh \`seq\` of its decision and DISTINCT
    // entities, so their key is new: they need no ON CONFLICT, whose speculative insertion
    // (probe the key, insert, confirm) cost about a third of each entity row.
    await this.#pool.query({
      // Named: each connection parses and plans it once, not once per delivery.
      name: 'vigil_insert_decisions',
      text: `WITH input AS (
         SELECT * FROM json_to_recordset($1::json) AS t(
           decision_id text, created_at bigint, tenant_id text, kind text, event_id text, verdict text,
           rule_ids text[], entities text[], body text, ord integer)
       ), inserted AS (
         INSERT INTO decisions (decision_id, created_at, tenant_id, kind, event_id, verdict, rule_ids, body)
         SELECT decision_id, created_at, tenant_id, kind, event_id, verdict, rule_ids, body FROM input ORDER BY ord
         ON CONFLICT DO NOTHING
         RETURNING decision_id, created_at, seq, tenant_id
       )
       INSERT INTO decision_entities (tenant_id, entity, created_at, seq, decision_id)
       SELECT DISTINCT i.tenant_id, e.entity, i.created_at, i.seq, i.decision_id
         FROM inserted i
         JOIN input ON input.decision_id = i.decision_id AND input.created_at = i.created_at
         CROSS JOIN LATERAL unnest(input.entities) AS e(entity)`,
      values: [JSON.stringify(rows)],
    });
  }

  /** Creates the daily partitions of `days` that are not known to exist (one round trip when all are). */
  async #ensurePartitions(days: Set<number>): Promise<void> {
    const missing = [...days].filter((day) => !this.#partitions.has(day));
    if (missing.length === 0) return;
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no listener of the pool's: its connection dying between two
    // queries would otherwise be an uncaught 'error' event that ends the process.
    const onClientError = (error: Error) => {
      broken ??= error;
    };
    client.on('error', onClientError);
    try {
      await client.query('BEGIN');
      // Nodes create partitions concurrently; the lock makes `IF NOT EXISTS` race-free.
      await client.query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.vigil_partitions'))");
      // Both parents in the order every statement locks them (see `search`), so no deadlock.
      await client.query('LOCK TABLE decisions, decision_entities IN SHARE ROW EXCLUSIVE MODE');
      for (const day of missing) {
        const suffix = partitionSuffix(day);
        const from = day * dayMs;
        const to = from + dayMs;
        for (const table of ['decisions', 'decision_entities']) {
          await client.query(
            `CREATE TABLE IF NOT EXISTS ${table}_${suffix} PARTITION OF ${table} FOR VALUES FROM (${from}) TO (${to})`,
          );
        }
      }
      await client.query('COMMIT');
      for (const day of missing) this.#partitions.add(day);
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError as Error;
      });
      throw error;
    } finally {
      client.off('error', onClientError);
      client.release(broken);
    }
  }

  /** Creates today's partitions and the next ones, and drops those past retention; then daily. */
  #scheduleMaintenance(delayMs: number): void {
    if (this.#closed) return;
    this.#maintenanceTimer = setTimeout(() => {
      this.#maintenance = this.maintainPartitions().then(
        () => this.#scheduleMaintenance(msUntilNextDay(this.#now()) + 60_000),
        (error: unknown) => {
          this.#onError?.(error instanceof Error ? error : new Error(String(error)));
          this.#scheduleMaintenance(60_000);
        },
      );
    }, delayMs);
    this.#maintenanceTimer.unref();
  }

  /**
   * Creates the partitions of today and `partitionsAhead` days after, and with `retentionDays`
   * drops the partitions that end before today minus that many days. Returns the dropped tables.
   */
  async maintainPartitions(): Promise<string[]> {
    await this.#ready();
    const today = Math.floor(this.#now() / dayMs);
    const days = new Set<number>();
    for (let ahead = 0; ahead <= this.#partitionsAhead; ahead++) days.add(today + ahead);
    await this.#ensurePartitions(days);
    if (this.#retentionDays === undefined) return [];
    const oldest = today - this.#retentionDays;
    const { rows } = await this.#pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent
         JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = current_schema() AND p.relname IN ('decisions', 'decision_entities')`,
    );
    const dropped: string[] = [];
    for (const { name } of rows) {
      const day = partitionDay(name);
      if (day === undefined || day >= oldest) continue;
      await this.#pool.query(`DROP TABLE IF EXISTS ${name}`);
      this.#partitions.delete(day);
      dropped.push(name);
    }
    return dropped.sort();
  }

  /**
   * Resolves once every record appended before the call is in PostgreSQL, or delivery is failing
   * (then the spooled records are not searchable until it recovers). With `flush` (reads, `close`)
   * what waits for the delivery delay is sent at once; without (shadow results, written after the
   * answer and once per decision while a shadow version runs) it goes with the next delivery, so
   * shadows do not undo the gathering.
   */
  async #whenDelivered(flush = true): Promise<void> {
    if (this.#lines.length > 0) this.#writeJournal();
    // The last batch queued now: everything before it goes first (deliveries keep journal order).
    const last = this.#queue[this.#queue.length - 1];
    if (last === undefined) return;
    if (flush) this.#flushing += 1;
    try {
      while (this.#queue.includes(last) && (this.#delivering || this.#retryTimer === undefined)) {
        if (!this.#delivering) this.#deliverSoon();
        await new Promise<void>((resolve) => this.#settled.push(resolve));
      }
    } finally {
      if (flush) this.#flushing -= 1;
    }
  }

  async get(tenantId: string, decisionId: string): Promise<DecisionRecord | undefined> {
    const pending = this.#pendingById.get(decisionId);
    if (pending !== undefined) return pending.tenantId === tenantId ? pending : undefined;
    await this.#ready();
    const { rows } = await this.#pool.query<{ body: string; shadows: string[] }>(
      `SELECT d.body, ARRAY(SELECT s.body FROM decision_shadows s
                             WHERE s.tenant_id = d.tenant_id AND s.decision_id = d.decision_id ORDER BY s.id) AS shadows
         FROM decisions d WHERE d.tenant_id = $1 AND d.decision_id = $2 LIMIT 1`,
      [clean(tenantId), clean(decisionId)],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    const record = JSON.parse(row.body) as DecisionRecord;
    if (row.shadows.length > 0)
      record.shadows = row.shadows.flatMap((body) => JSON.parse(body) as ShadowResult[]);
    return record;
  }

  /**
   * On the answer's path (idempotency). A failed or slow lookup answers "not found" rather than
   * failing the decision, and for a second after one PostgreSQL is not asked at all: with
   * PostgreSQL down, a retried event id may be decided again (Redis idempotency covers this).
   */
  async findByEventId(
    tenantId: string,
    eventId: string,
    since: number,
    kind: DecisionRecord['kind'],
  ): Promise<DecisionRecord | undefined> {
    const pending = this.#pendingByEvent.get(eventKey(tenantId, eventId, kind));
    if (pending !== undefined && pending.createdAt >= since) return pending;
    if (Date.now() < this.#lookupsPausedUntil) return undefined;
    // The lookups of one event-loop turn go to PostgreSQL as one query: under load, one round
    // trip and one statement for many decisions instead of one each.
    return new Promise((resolve) => {
      this.#lookups.push({ tenantId, eventId, kind, since, resolve });
      if (this.#lookups.length === 1) setImmediate(() => this.#lookUp());
    });
  }

  /** Sends this turn's lookups, at most `maxLookupsPerQuery` per query; never rejects. */
  #lookUp(): void {
    const lookups = this.#lookups;
    this.#lookups = [];
    for (let from = 0; from < lookups.length; from += maxLookupsPerQuery)
      void this.#lookUpBatch(lookups.slice(from, from + maxLookupsPerQuery));
  }

  async #lookUpBatch(lookups: Lookup[]): Promise<void> {
    let found: (DecisionRecord | undefined)[] = [];
    try {
      await this.#ready();
      const tenants: string[] = [];
      const events: string[] = [];
      const kinds: string[] = [];
      const sinces: number[] = [];
      for (const lookup of lookups) {
        tenants.push(clean(lookup.tenantId));
        events.push(clean(lookup.eventId));
        kinds.push(lookup.kind);
        sinces.push(lookup.since);
      }
      const { rows } = await this.#pool.query<{ i: string; body: string }>({
        // Named: each connection parses and plans it once, not once per turn.
        name: 'vigil_find_by_event_ids',
        text: findByEventIdsSql,
        values: [tenants, events, kinds, sinces],
        query_timeout: this.#lookupTimeoutMs,
      } as pg.QueryConfig);
      found = new Array(lookups.length);
      for (const row of rows) found[Number(row.i) - 1] = JSON.parse(row.body) as DecisionRecord;
    } catch (error) {
      this.#lookupsPausedUntil = Date.now() + 1_000;
      this.#onError?.(error instanceof Error ? error : new Error(String(error)));
    }
    for (let index = 0; index < lookups.length; index++) (lookups[index] as Lookup).resolve(found[index]);
  }

  async recordShadows(tenantId: string, decisionId: string, results: ShadowResult[]): Promise<void> {
    // Shadows are read with their decision from PostgreSQL, so the decision goes first.
    await this.#whenDelivered(false);
    await this.#ready();
    await this.#pool.query(
      'INSERT INTO decision_shadows (tenant_id, decision_id, body) VALUES ($1, $2, $3)',
      [clean(tenantId), clean(decisionId), JSON.stringify(results)],
    );
  }

  async scan(
    tenantId: string,
    since: number,
    visit: (records: DecisionRecord[]) => Promise<void>,
  ): Promise<void> {
    await this.#whenDelivered();
    await this.#ready();
    let after: [number, number] = [since, -1];
    for (;;) {
      const { rows } = await this.#pool.query<{ body: string; created_at: string; seq: string }>(
        `SELECT body, created_at, seq FROM decisions
          WHERE tenant_id = $1 AND created_at >= $2 AND (created_at, seq) > ($2, $3)
          ORDER BY created_at, seq LIMIT 1000`,
        [clean(tenantId), after[0], after[1]],
      );
      if (rows.length === 0) return;
      await visit(rows.map((row) => JSON.parse(row.body) as DecisionRecord));
      const last = rows[rows.length - 1] as { created_at: string; seq: string };
      after = [Number(last.created_at), Number(last.seq)];
    }
  }

  async search(query: DecisionQuery): Promise<DecisionPage> {
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    await this.#whenDelivered();
    await this.#ready();
    const params: unknown[] = [];
    const add = (value: unknown) => {
      params.push(value);
      return `$${params.length}`;
    };
    const where: string[] = [];
    let from = 'decisions d';
    // With an entity its index drives the scan; otherwise the time index does.
    const time = query.entity !== undefined ? 'e' : 'd';
    const tenant = add(clean(query.tenantId));
    if (query.entity !== undefined) {
      // `decisions` first: every statement locks it before `decision_entities`, as partition
      // creation does, so they cannot deadlock.
      from = `decisions d JOIN decision_entities e
                ON d.decision_id = e.decision_id AND d.created_at = e.created_at`;
      where.push(`e.tenant_id = ${tenant}`, `e.entity = ${add(clean(query.entity))}`);
    }
    where.push(`d.tenant_id = ${tenant}`);
    if (query.verdict !== undefined) where.push(`d.verdict = ${add(query.verdict)}`);
    if (query.rule !== undefined) where.push(`d.rule_ids @> ARRAY[${add(clean(query.rule))}]::text[]`);
    if (query.from !== undefined) where.push(`${time}.created_at >= ${add(query.from)}`);
    if (query.to !== undefined) where.push(`${time}.created_at < ${add(query.to)}`);
    if (cursor !== undefined) {
      const createdAt = add(cursor[0]);
      where.push(
        `${time}.created_at <= ${createdAt}`,
        `(${time}.created_at, ${time}.seq) < (${createdAt}, ${add(cursor[1])})`,
      );
    }
    const limit = add(query.limit + 1);
    const { rows } = await this.#pool.query<{ body: string; created_at: string; seq: string }>(
      `SELECT d.body, ${time}.created_at, ${time}.seq FROM ${from} WHERE ${where.join(' AND ')}
        ORDER BY ${time}.created_at DESC, ${time}.seq DESC LIMIT ${limit}`,
      params,
    );
    const page: DecisionPage = {
      records: rows.slice(0, query.limit).map((row) => JSON.parse(row.body) as DecisionRecord),
    };
    if (rows.length > query.limit) {
      const last = rows[query.limit - 1] as { created_at: string; seq: string };
      page.nextCursor = encodeCursor(Number(last.created_at), Number(last.seq));
    }
    return page;
  }

  async addFeedback(feedback: FeedbackRecord): Promise<void> {
    await this.#ready();
    await this.#pool.query(
      'INSERT INTO feedback (tenant_id, event_id, label, source, note, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [
        clean(feedback.tenantId),
        clean(feedback.event_id),
        feedback.label,
        feedback.source === undefined ? null : clean(feedback.source),
        feedback.note === undefined ? null : clean(feedback.note),
        feedback.createdAt,
      ],
    );
  }

  async listFeedback(tenantId: string, eventId: string): Promise<FeedbackRecord[]> {
    await this.#ready();
    const { rows } = await this.#pool.query<{
      tenant_id: string;
      event_id: string;
      label: 'fraud' | 'legit';
      source: string | null;
      note: string | null;
      created_at: string;
    }>('SELECT * FROM feedback WHERE tenant_id = $1 AND event_id = $2 ORDER BY id', [
      clean(tenantId),
      clean(eventId),
    ]);
    return rows.map((row) => {
      const feedback: FeedbackRecord = {
        tenantId: row.tenant_id,
        event_id: row.event_id,
        label: row.label,
        createdAt: Number(row.created_at),
      };
      if (row.source !== null) feedback.source = row.source;
      if (row.note !== null) feedback.note = row.note;
      return feedback;
    });
  }

  async deleteTenant(tenantId: string): Promise<void> {
    await this.#whenDelivered();
    const tenant = clean(tenantId);
    await this.#ready();
    for (const table of ['decisions', 'decision_entities', 'decision_shadows', 'feedback']) {
      await this.#pool.query(`DELETE FROM ${table} WHERE tenant_id = $1`, [tenant]);
    }
  }

  /**
   * Writes every appended record to the journal, delivers what PostgreSQL takes now (records it
   * refuses stay in the journal for the next open), and releases the journal and an owned pool.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#whenDelivered();
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    clearTimeout(this.#gatherTimer);
    this.#gatherTimer = undefined;
    clearTimeout(this.#maintenanceTimer);
    await this.#maintenance;
    while (this.#delivering) await new Promise<void>((resolve) => this.#settled.push(resolve));
    this.#journal.close();
    if (this.#ownsPool && !this.#pool.ended) await this.#pool.end();
  }
}

function eventKey(tenantId: string, eventId: string, kind: DecisionRecord['kind']): string {
  return `${kind}\u0000${tenantId}\u0000${eventId}`;
}

/**
 * A value PostgreSQL can store as `text`: it refuses NUL characters and (through JSON) lone
 * surrogates, so both become U+FFFD in the indexed columns. Lookups apply the same, so they still
 * match; the record's body keeps the exact original.
 */
function clean(value: string): string {
  return hasUnstorable.test(value) ? value.replace(unstorable, '\ufffd') : value;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what PostgreSQL text refuses.
const hasUnstorable = /\u0000|\p{Cs}/u;
// biome-ignore lint/suspicious/noControlCharactersInRegex: as above.
const unstorable = /\u0000|\p{Cs}/gu;

function partitionSuffix(day: number): string {
  return new Date(day * dayMs).toISOString().slice(0, 10).replaceAll('-', '');
}

/** The day of a partition's table name (`decisions_20261124`), if it is one of ours. */
function partitionDay(name: string): number | undefined {
  const match = /^(?:decisions|decision_entities)_(\d{4})(\d{2})(\d{2})$/.exec(name);
  if (match === null) return undefined;
  return Math.floor(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) / dayMs);
}

function msUntilNextDay(now: number): number {
  return (Math.floor(now / dayMs) + 1) * dayMs - now;
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
