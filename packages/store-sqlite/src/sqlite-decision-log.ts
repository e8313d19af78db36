import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import type { RecordRow, WriterRequest, WriterResponse } from './sqlite-log-writer.js';

/**
 * The writer's compiled script. Tests run this file from `src/` (as TypeScript), where Node 20
 * cannot start a worker from a `.ts` file, so they use the build in `dist/` (`npm test` builds first).
 */
const writerScript = new URL(
  import.meta.url.endsWith('.ts') ? '../dist/sqlite-log-writer.js' : './sqlite-log-writer.js',
  import.meta.url,
);

/**
 * Batches posted to the writer before the first is acknowledged. More than one keeps the writer
 * busy while this thread answers the last batch's requests; a few are enough, since the writer
 * commits them one after another.
 */
const maxBatchesInFlight = 4;

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
  /** Most records written in one transaction. */
  maxBatch?: number;
}

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
 * The embedded decision log. Writes go to one writer thread (`sqlite-log-writer.ts`); reads use
 * this thread's own connection, which sees every committed write (WAL). Appends are grouped: all
 * records appended while the previous batch is being committed go into the next transaction, and
 * each append resolves only once its transaction has committed (group commit).
 */
export class SqliteDecisionLog implements DecisionLog, EventHistory {
  readonly #db: Database.Database;
  readonly #writer: Worker;
  readonly #maxBatch: number;
  #rows: string[] = [];
  #waiting: Pending[] = [];
  #inFlight = 0;
  #scheduled = false;
  #closed = false;
  #failure: Error | undefined;
  #nextRequest = 1;
  #idle: (() => void)[] = [];
  readonly #requests = new Map<number, Pending & { size: number }>();
  readonly #statements = new Map<string, Database.Statement>();

  constructor(options: SqliteDecisionLogOptions) {
    // An in-memory database cannot be shared with the writer thread, so `:memory:` becomes a
    // fresh temporary file that is removed on close.
    this.#temporary = options.path === ':memory:' ? mkdtempSync(join(tmpdir(), 'vigil-log-')) : undefined;
    const path = this.#temporary === undefined ? options.path : join(this.#temporary, 'decisions.db');
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(schema);
    this.#maxBatch = options.maxBatch ?? 5000;
    this.#writer = new Worker(writerScript, { workerData: { path, sync: options.sync ?? 'normal' } });
    this.#writer.on('message', (response: WriterResponse) => this.#acknowledge(response));
    this.#writer.on('error', (error) => this.#fail(error));
    this.#writer.on('exit', (code) => {
      if (!this.#closed) this.#fail(new Error(`decision log writer exited with code ${code}`));
    });
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

  append(record: DecisionRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('decision log is closed'));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const body = JSON.stringify({
      event: record.event,
      response: record.response,
      features: record.features,
    });
    // Each row travels to the writer as one JSON line: one string per batch is far cheaper to post
    // than a structured clone of thousands of small values.
    this.#rows.push(
      JSON.stringify([
        record.decisionId,
        record.tenantId,
        record.kind,
        record.event.id,
        record.createdAt,
        record.verdict,
        JSON.stringify(record.ruleIds),
        JSON.stringify(record.entities),
        body,
        record.entities,
      ] satisfies RecordRow),
    );
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#schedule();
    });
  }

  queueDepth(): number {
    let inFlight = 0;
    for (const request of this.#requests.values()) inFlight += request.size;
    return this.#rows.length + inFlight;
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= maxBatchesInFlight) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#send();
    });
  }

  /** Sends the queued rows as one batch; with `maxBatchesInFlight` posted, later rows wait and batches grow under load. */
  #send(): void {
    if (this.#rows.length === 0 || this.#inFlight >= maxBatchesInFlight) return;
    const rows = this.#rows.length <= this.#maxBatch ? this.#rows : this.#rows.slice(0, this.#maxBatch);
    const waiting = this.#waiting.slice(0, rows.length);
    this.#rows = rows === this.#rows ? [] : this.#rows.slice(rows.length);
    this.#waiting = this.#waiting.slice(rows.length);
    this.#inFlight += 1;
    this.#request({ op: 'records', rows: rows.join('\n') }, rows.length).then(
      () => {
        for (const pending of waiting) pending.resolve();
      },
      (error: unknown) => {
        for (const pending of waiting) pending.reject(error);
      },
    );
  }

  #request(request: DistributiveOmit<WriterRequest, 'id'>, size = 0): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextRequest++;
    return new Promise((resolve, reject) => {
      this.#requests.set(id, { resolve, reject, size });
      this.#writer.postMessage({ ...request, id });
    });
  }

  #acknowledge(response: WriterResponse): void {
    const pending = this.#requests.get(response.id);
    if (pending === undefined) return;
    this.#requests.delete(response.id);
    if (pending.size > 0) this.#inFlight -= 1;
    if (response.error === undefined) pending.resolve();
    else pending.reject(new Error(`decision log write failed: ${response.error}`));
    if (this.#rows.length > 0) this.#send();
    this.#wakeIdle();
  }

  #wakeIdle(): void {
    if (this.#requests.size > 0 && this.#failure === undefined) return;
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
    this.#rows = [];
    this.#wakeIdle();
  }

  async get(tenantId: string, decisionId: string): Promise<DecisionRecord | undefined> {
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
    const row = this.#statement(
      `SELECT * FROM records WHERE tenant_id = ? AND event_id = ? AND kind = ? AND created_at >= ?
         ORDER BY created_at DESC LIMIT 1`,
    ).get(tenantId, eventId, kind, since) as Row | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  async search(query: DecisionQuery): Promise<DecisionPage> {
    // The writer indexes entities behind the records; a search first brings the index up to date.
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
    while (this.#rows.length > 0 || this.#requests.size > 0) {
      this.#send();
      await new Promise<void>((resolve) => this.#idle.push(resolve));
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#drain();
    this.#closed = true;
    await this.#writer.terminate();
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
