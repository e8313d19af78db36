import type {
  DecisionLog,
  DecisionPage,
  DecisionQuery,
  DecisionRecord,
  FeedbackRecord,
  ShadowResult,
} from '@vigil/engine';
import { VigilError } from '@vigil/protocol';
import Database from 'better-sqlite3';

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
  record: DecisionRecord;
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
 * The embedded decision log. Appends are grouped: every append made in one turn of the event loop
 * goes into one transaction, committed before any of their promises resolves (group commit).
 */
export class SqliteDecisionLog implements DecisionLog {
  readonly #db: Database.Database;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #scheduled = false;
  #closed = false;
  readonly #insert: Database.Statement;
  readonly #insertEntity: Database.Statement;
  readonly #writeBatch: (batch: Pending[]) => void;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(options: SqliteDecisionLogOptions) {
    this.#db = new Database(options.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma(`synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`);
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(schema);
    this.#maxBatch = options.maxBatch ?? 2000;
    this.#insert = this.#db.prepare(
      `INSERT OR IGNORE INTO records (decision_id, tenant_id, kind, event_id, created_at, verdict, rule_ids, entities, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#insertEntity = this.#db.prepare(
      'INSERT OR IGNORE INTO record_entities (tenant_id, entity, created_at, seq) VALUES (?, ?, ?, ?)',
    );
    this.#writeBatch = this.#db.transaction((batch: Pending[]) => {
      for (const { record } of batch) {
        const body = JSON.stringify({
          event: record.event,
          response: record.response,
          features: record.features,
        });
        const result = this.#insert.run(
          record.decisionId,
          record.tenantId,
          record.kind,
          record.event.id,
          record.createdAt,
          record.verdict,
          JSON.stringify(record.ruleIds),
          JSON.stringify(record.entities),
          body,
        );
        if (result.changes === 0) continue;
        for (const entity of record.entities) {
          this.#insertEntity.run(record.tenantId, entity, record.createdAt, result.lastInsertRowid);
        }
      }
    });
  }

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
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  queueDepth(): number {
    return this.#queue.length;
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#queue.length > 0) {
      const batch = this.#queue.length <= this.#maxBatch ? this.#queue : this.#queue.slice(0, this.#maxBatch);
      this.#queue = batch === this.#queue ? [] : this.#queue.slice(batch.length);
      try {
        this.#writeBatch(batch);
        for (const pending of batch) pending.resolve();
      } catch (error) {
        for (const pending of batch) pending.reject(error);
      }
    }
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

  async recordShadows(tenantId: string, decisionId: string, results: ShadowResult[]): Promise<void> {
    this.#statement('INSERT INTO shadow_results (tenant_id, decision_id, body) VALUES (?, ?, ?)').run(
      tenantId,
      decisionId,
      JSON.stringify(results),
    );
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

  async addFeedback(feedback: FeedbackRecord): Promise<void> {
    this.#statement(
      'INSERT INTO feedback (tenant_id, event_id, label, source, note, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(
      feedback.tenantId,
      feedback.event_id,
      feedback.label,
      feedback.source ?? null,
      feedback.note ?? null,
      feedback.createdAt,
    );
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
    this.#flush();
    this.#db.transaction(() => {
      this.#statement('DELETE FROM record_entities WHERE tenant_id = ?').run(tenantId);
      this.#statement('DELETE FROM records WHERE tenant_id = ?').run(tenantId);
      this.#statement('DELETE FROM feedback WHERE tenant_id = ?').run(tenantId);
      this.#statement('DELETE FROM shadow_results WHERE tenant_id = ?').run(tenantId);
    })();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
    this.#db.close();
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
