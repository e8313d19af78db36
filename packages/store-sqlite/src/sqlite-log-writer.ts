import { closeSync, openSync, readlinkSync, readSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/**
 * The decision log's single writer, in a worker thread so that SQLite's inserts and commits do not
 * block the event loop that answers requests. It receives batches of pre-serialised rows, writes
 * each batch in one transaction, and acknowledges it once committed.
 */

/** The columns of a journal line, before the tab and the body (journal version 2). */
export type RecordColumns = [
  decisionId: string,
  tenantId: string,
  kind: string,
  eventId: string,
  createdAt: number,
  verdict: string | null,
  ruleIds: readonly string[],
  entities: readonly string[],
];

/** One record as the writer stores it: `records` columns, then its entity values. */
export type RecordRow = [
  decisionId: string,
  tenantId: string,
  kind: string,
  eventId: string,
  createdAt: number,
  verdict: string | null,
  ruleIds: string,
  entities: string,
  body: string,
  entityValues: string[],
];

export type WriterRequest =
  | {
      id: number;
      op: 'records';
      /**
       * Which lines of the journal to store: bytes `from` to `offset` of this generation, read
       * by the writer from the file (the append thread does not copy them into a message). The
       * offset is stored with them; a batch that does not start where the stored offset ends is
       * refused.
       */
      journal: { generation: number; from: number; offset: number };
    }
  | { id: number; op: 'shadows'; tenantId: string; decisionId: string; body: string }
  | {
      id: number;
      op: 'feedback';
      row: [string, string, string, string | null, string | null, number];
    }
  | { id: number; op: 'delete_tenant'; tenantId: string }
  /** Brings the entity index up to date with every committed record (before a search). */
  | { id: number; op: 'sync_index' };

export type WriterResponse = { id: number; error?: string };

type RecordsRequest = Extract<WriterRequest, { op: 'records' }>;

/** Shortest time between two of the writer's turns (see `take` in `start`). */
const commitIntervalMs = 20;

/** The first line of each journal generation. */
export function journalHeader(generation: number): string {
  return `${JSON.stringify({ vigil_journal: 2, generation })}\n`;
}

/**
 * Reads one journal line: `<columns JSON>\t<body JSON>` (version 2), or the JSON array of a
 * `RecordRow` that version 1 wrote. JSON text without indentation has no raw tab, so the first
 * tab separates the two.
 */
export function parseJournalLine(line: string): RecordRow {
  const tab = line.indexOf('\t');
  if (tab < 0) return JSON.parse(line) as RecordRow;
  const columns = JSON.parse(line.slice(0, tab)) as RecordColumns;
  return [
    columns[0],
    columns[1],
    columns[2],
    columns[3],
    columns[4],
    columns[5],
    JSON.stringify(columns[6]),
    JSON.stringify(columns[7]),
    line.slice(tab + 1),
    columns[7] as string[],
  ];
}

interface WriterOptions {
  path: string;
  sync: 'normal' | 'full';
  journalPath: string;
  /** The journal generation the file at `journalPath` holds when the writer starts. */
  generation: number;
}

/** The niceness of the writer thread: below the threads that answer requests. */
export const writerNice = 10;

/**
 * Lowers this thread's scheduling priority (Linux: `setpriority` takes a thread id). The writer
 * works behind the answers, which are already durable in the journal; on a small machine it should
 * not take a core from the thread that answers. Elsewhere it runs at normal priority.
 */
function lowerThreadPriority(nice: number): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // Not Linux, or not allowed: normal priority.
  }
}

function start(options: WriterOptions): void {
  const port = parentPort;
  if (port === null) throw new Error('the writer runs in a worker thread');
  lowerThreadPriority(writerNice);
  const db = new Database(options.path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  // The indexes on event ids and entities take inserts at random places: a larger page cache keeps
  // their pages in memory, and rarer checkpoints write a page changed by many commits once.
  db.pragma('cache_size = -65536');
  db.pragma('wal_autocheckpoint = 10000');
  const insert = db.prepare(
    `INSERT OR IGNORE INTO records (decision_id, tenant_id, kind, event_id, created_at, verdict, rule_ids, entities, body)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertEntity = db.prepare(
    'INSERT OR IGNORE INTO record_entities (tenant_id, entity, created_at, seq) VALUES (?, ?, ?, ?)',
  );
  // Index rows go in 100 to a statement: one native call and one statement run per 100 rows cut
  // the index's cost by about a fifth (ADR 0002, update 5).
  const entityRowsPerInsert = 100;
  const insertEntities = db.prepare(
    `INSERT OR IGNORE INTO record_entities (tenant_id, entity, created_at, seq) VALUES ${Array.from(
      { length: entityRowsPerInsert },
      () => '(?, ?, ?, ?)',
    ).join(', ')}`,
  );
  const entityArguments: unknown[] = new Array(entityRowsPerInsert * 4);
  const setIndexed = db.prepare(
    "INSERT INTO log_meta (key, value) VALUES ('entities_indexed_to', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  );
  const indexedTo = db.prepare("SELECT value FROM log_meta WHERE key = 'entities_indexed_to'");
  const unindexed = db.prepare(
    'SELECT seq, tenant_id, created_at, entities FROM records WHERE seq > ? ORDER BY seq',
  );

  /**
   * The entity index is written behind the records, in large batches: its rows land all over the
   * B-tree, and a few thousand at once cost far less per row than a few per decision. Durability
   * does not depend on it: `log_meta` says up to which record it is complete, and a restart indexes
   * the rest from the records themselves.
   */
  let pendingEntities: [tenantId: string, entity: string, createdAt: number, seq: number | bigint][] = [];
  let lastSeq: number | bigint = 0;
  let timer: NodeJS.Timeout | undefined;
  // One chunk per transaction, so a record batch arriving meanwhile waits for at most one chunk.
  const chunkRows = 2_000;
  const flushChunk = db.transaction(() => {
    const chunk = pendingEntities.length <= chunkRows ? pendingEntities : pendingEntities.slice(0, chunkRows);
    let index = 0;
    for (; index + entityRowsPerInsert <= chunk.length; index += entityRowsPerInsert) {
      for (let offset = 0; offset < entityRowsPerInsert; offset += 1) {
        const row = chunk[index + offset] as (typeof chunk)[number];
        entityArguments[offset * 4] = row[0];
        entityArguments[offset * 4 + 1] = row[1];
        entityArguments[offset * 4 + 2] = row[2];
        entityArguments[offset * 4 + 3] = row[3];
      }
      insertEntities.run(entityArguments);
    }
    for (; index < chunk.length; index += 1) {
      const row = chunk[index] as (typeof chunk)[number];
      insertEntity.run(row[0], row[1], row[2], row[3]);
    }
    pendingEntities = chunk === pendingEntities ? [] : pendingEntities.slice(chunk.length);
    // Complete up to the last record whose every entity is written.
    const next = pendingEntities[0];
    setIndexed.run(next === undefined ? lastSeq : BigInt(next[3]) - 1n);
  });
  /** Writes every pending index row now (before a search, on close). */
  const flushEntities = () => {
    while (pendingEntities.length > 0) flushChunk();
  };
  let draining = false;
  /** Writes pending index rows chunk by chunk, letting record batches in between. */
  const drainSoon = () => {
    if (draining) return;
    draining = true;
    const step = () => {
      if (pendingEntities.length === 0) {
        draining = false;
        return;
      }
      flushChunk();
      setImmediate(step);
    };
    setImmediate(step);
  };
  const indexSoon = () => {
    if (pendingEntities.length >= 20_000) {
      clearTimeout(timer);
      timer = undefined;
      drainSoon();
    } else {
      timer ??= setTimeout(() => {
        timer = undefined;
        drainSoon();
      }, 250);
    }
  };
  const catchUp = () => {
    const from = (indexedTo.get() as { value: number } | undefined)?.value ?? 0;
    for (const row of unindexed.iterate(from) as Iterable<{
      seq: number;
      tenant_id: string;
      created_at: number;
      entities: string;
    }>) {
      for (const entity of JSON.parse(row.entities) as string[]) {
        pendingEntities.push([row.tenant_id, entity, row.created_at, row.seq]);
      }
      lastSeq = row.seq;
    }
    if (lastSeq > from) flushEntities();
  };
  catchUp();

  const setMeta = db.prepare(
    'INSERT INTO log_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  );
  let journal = openSync(options.journalPath, 'r');
  let journalGeneration = options.generation;
  /**
   * The journal's bytes `from`..`to` of `generation`: whole lines, the last one ending in a
   * newline. A new generation is a new file at the same path (the node renames the old one away),
   * so the writer opens it again when the generation changes.
   */
  const journalLines = (generation: number, from: number, to: number): string[] => {
    if (generation !== journalGeneration) {
      closeSync(journal);
      journal = openSync(options.journalPath, 'r');
      journalGeneration = generation;
    }
    const buffer = Buffer.allocUnsafe(to - from);
    for (let read = 0; read < buffer.length; ) {
      const count = readSync(journal, buffer, read, buffer.length - read, from + read);
      if (count === 0) throw new Error('the journal is shorter than a batch it announced');
      read += count;
    }
    return buffer.toString('utf8', 0, buffer.length - 1).split('\n');
  };
  /** Stores batches in one transaction, with how far into the journal the last one reaches. */
  const writeRecords = db.transaction((batches: RecordsRequest[]) => {
    for (const batch of batches) {
      for (const line of journalLines(batch.journal.generation, batch.journal.from, batch.journal.offset)) {
        const row = parseJournalLine(line);
        const result = insert.run(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8]);
        if (result.changes === 0) continue;
        lastSeq = result.lastInsertRowid;
        for (const entity of row[9]) pendingEntities.push([row[1], entity, row[4], result.lastInsertRowid]);
      }
    }
    const last = (batches[batches.length - 1] as RecordsRequest).journal;
    setMeta.run('journal_generation', last.generation);
    setMeta.run('journal_offset', last.offset);
  });
  const insertShadows = db.prepare(
    'INSERT INTO shadow_results (tenant_id, decision_id, body) VALUES (?, ?, ?)',
  );
  const insertFeedback = db.prepare(
    'INSERT INTO feedback (tenant_id, event_id, label, source, note, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const deleteTenant = db.transaction((tenantId: string) => {
    pendingEntities = pendingEntities.filter((row) => row[0] !== tenantId);
    for (const table of ['record_entities', 'records', 'feedback', 'shadow_results']) {
      db.prepare(`DELETE FROM ${table} WHERE tenant_id = ?`).run(tenantId);
    }
  });

  /**
   * How far into the journal SQLite has every line. Batches are taken only in journal order (a
   * new generation starts once SQLite has all of the last one), so after a failed batch the later
   * ones are refused until it is in, and the stored offset never passes a line SQLite lacks.
   */
  const meta = db.prepare('SELECT value FROM log_meta WHERE key = ?');
  const position = {
    generation: (meta.get('journal_generation') as { value: number } | undefined)?.value ?? 0,
    offset: (meta.get('journal_offset') as { value: number } | undefined)?.value ?? 0,
  };
  /** Whether a batch starts where the stored lines end (or opens the next generation). */
  const follows = (at: { generation: number; offset: number }, batch: RecordsRequest): boolean =>
    batch.journal.generation === at.generation
      ? batch.journal.from === at.offset
      : batch.journal.generation === at.generation + 1 &&
        batch.journal.from === Buffer.byteLength(journalHeader(batch.journal.generation));

  const other = (request: Exclude<WriterRequest, RecordsRequest>): void => {
    if (request.op === 'sync_index') {
      clearTimeout(timer);
      timer = undefined;
      if (pendingEntities.length > 0) flushEntities();
    } else if (request.op === 'shadows')
      insertShadows.run(request.tenantId, request.decisionId, request.body);
    else if (request.op === 'feedback') insertFeedback.run(...request.row);
    else deleteTenant(request.tenantId);
  };
  const answer = (id: number, error?: unknown): void => {
    const response: WriterResponse = { id };
    if (error !== undefined) response.error = error instanceof Error ? error.message : String(error);
    port.postMessage(response);
  };

  /**
   * Requests are taken at most every `commitIntervalMs`, all that arrived meanwhile at once, and
   * consecutive record batches are stored in one transaction: under load each commit carries
   * hundreds of records, and the random index pages a record touches are written once per commit
   * rather than once per record. Answers never wait for this (the journal made them durable);
   * searches wait at most one interval.
   */
  let inbox: WriterRequest[] = [];
  let due: NodeJS.Timeout | undefined;
  let lastTaken = 0;
  const take = () => {
    due = undefined;
    lastTaken = performance.now();
    const queue = inbox;
    for (let next = receiveMessageOnPort(port); next !== undefined; next = receiveMessageOnPort(port)) {
      queue.push(next.message as WriterRequest);
    }
    inbox = [];
    handle(queue);
  };
  port.on('message', (request: WriterRequest) => {
    inbox.push(request);
    due ??= setTimeout(take, Math.max(0, lastTaken + commitIntervalMs - performance.now()));
  });
  const handle = (queue: WriterRequest[]) => {
    for (let index = 0; index < queue.length; ) {
      const request = queue[index] as WriterRequest;
      if (request.op !== 'records') {
        index += 1;
        try {
          other(request);
          answer(request.id);
        } catch (error) {
          answer(request.id, error);
        }
        continue;
      }
      const group: RecordsRequest[] = [];
      const at = { ...position };
      for (; index < queue.length && (queue[index] as WriterRequest).op === 'records'; index += 1) {
        const batch = queue[index] as RecordsRequest;
        if (!follows(at, batch)) {
          answer(batch.id, new Error('an earlier batch of the journal is not stored yet'));
          continue;
        }
        group.push(batch);
        at.generation = batch.journal.generation;
        at.offset = batch.journal.offset;
      }
      if (group.length === 0) continue;
      try {
        writeRecords(group);
      } catch (error) {
        for (const batch of group) answer(batch.id, error);
        continue;
      }
      position.generation = at.generation;
      position.offset = at.offset;
      for (const batch of group) answer(batch.id);
      indexSoon();
    }
  };
  port.on('close', () => {
    clearTimeout(timer);
    clearTimeout(due);
    closeSync(journal);
    if (pendingEntities.length > 0) flushEntities();
    db.close();
  });
}

if (parentPort !== null && workerData !== undefined && workerData !== null)
  start(workerData as WriterOptions);
