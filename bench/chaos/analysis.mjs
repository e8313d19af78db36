// Figures of `npm run chaos` from the load generator's per-request records, and the decision-log
// check (lost and duplicated records). The definitions are in docs/RELIABILITY.md, "Chaos drills".
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  CONNECTION_ERROR,
  FLAG_DEGRADED,
  FLAG_RETRY_AFTER,
  FLAG_RULE_ERRORS,
  FLAG_SHED,
  TIMEOUT,
  UNSENT,
} from './load-generator.mjs';

const arrayTypes = {
  due: Float64Array,
  sendDelay: Float32Array,
  latency: Float32Array,
  serverLatency: Float32Array,
  status: Uint16Array,
  flags: Uint8Array,
  code: Uint8Array,
  stream: Uint8Array,
};

/** The generator's records, read back from `outDir`. */
export function loadRecords(outDir, result) {
  const records = { count: result.count, codes: result.codes };
  for (const [name, Type] of Object.entries(arrayTypes)) {
    const bytes = readFileSync(join(outDir, `${name}.bin`));
    // Copied into a fresh buffer: a file's Buffer may sit at an offset that is not aligned.
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    records[name] = new Type(copy.buffer, 0, result.count);
  }
  return records;
}

/** Answered, not shed, per stream: event id → decision id. */
export function loadAnswered(outDir, streamIndex) {
  const text = readFileSync(join(outDir, `answered-${streamIndex}.tsv`), 'utf8');
  return text === '' ? [] : text.split('\n').map((line) => line.split('\t'));
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank];
}

/**
 * Figures of the requests of `streams` that were due in [from, to) (ms from the start of the load).
 * - within deadline: a 200, or a documented rejection (429 with Retry-After; 503 `overloaded` or
 *   `draining` with Retry-After), whose latency is at most the deadline + 1 ms;
 * - p50/p99 over every request that is not a documented rejection; a request with no answer
 *   (client timeout, connection error, never sent) counts as infinitely slow;
 * - reject p99 over the documented rejections;
 * - 5xx: 500–599 other than 503 `overloaded`/`draining`, which are counted as `503`.
 */
export function summarise(records, { streams, from, to, deadlineMs }) {
  const codes = records.codes;
  const latencies = [];
  const rejectLatencies = [];
  const figures = {
    requests: 0,
    ok: 0,
    okWithin: 0,
    within: 0,
    rejected: 0,
    rejectedWithoutRetryAfter: 0,
    degraded: 0,
    shed: 0,
    ruleErrors: 0,
    fiveXX: 0,
    documented503: 0,
    status429: 0,
    timeouts: 0,
    connectionErrors: 0,
    unsent: 0,
    other: 0,
    sendDelays: [],
    serverLatencies: [],
  };
  const limit = deadlineMs + 1;
  for (let index = 0; index < records.count; index += 1) {
    const due = records.due[index];
    if (due < from || due >= to || !streams.includes(records.stream[index])) continue;
    figures.requests += 1;
    const status = records.status[index];
    const flags = records.flags[index];
    const latency = records.latency[index];
    const code = codes[records.code[index]];
    if (!Number.isNaN(records.sendDelay[index])) figures.sendDelays.push(records.sendDelay[index]);
    if (status === TIMEOUT) figures.timeouts += 1;
    else if (status === CONNECTION_ERROR) figures.connectionErrors += 1;
    else if (status === UNSENT) figures.unsent += 1;
    const documented503 = status === 503 && (code === 'overloaded' || code === 'draining');
    if (documented503) figures.documented503 += 1;
    if (status === 429) figures.status429 += 1;
    const rejection = status === 429 || documented503;
    if (rejection) {
      if ((flags & FLAG_RETRY_AFTER) === 0) figures.rejectedWithoutRetryAfter += 1;
      else {
        figures.rejected += 1;
        rejectLatencies.push(latency);
        if (latency <= limit) figures.within += 1;
        continue;
      }
    }
    if (status >= 500 && status <= 599 && !documented503) figures.fiveXX += 1;
    if (status === 200) {
      figures.ok += 1;
      figures.serverLatencies.push(records.serverLatency[index]);
      if ((flags & FLAG_DEGRADED) !== 0) figures.degraded += 1;
      if ((flags & FLAG_SHED) !== 0) figures.shed += 1;
      if ((flags & FLAG_RULE_ERRORS) !== 0) figures.ruleErrors += 1;
      if (latency <= limit) {
        figures.within += 1;
        figures.okWithin += 1;
      }
    } else if (status >= 300 && !rejection && !(status >= 500)) figures.other += 1;
    latencies.push(status >= 100 && !Number.isNaN(latency) ? latency : Number.POSITIVE_INFINITY);
  }
  latencies.sort((a, b) => a - b);
  rejectLatencies.sort((a, b) => a - b);
  figures.sendDelays.sort((a, b) => a - b);
  figures.serverLatencies.sort((a, b) => a - b);
  const share = (count, of) => (of === 0 ? Number.NaN : (100 * count) / of);
  return {
    ...figures,
    seconds: (to - from) / 1000,
    withinPct: share(figures.within, figures.requests),
    rejectedPct: share(figures.rejected, figures.requests),
    degradedPct: share(figures.degraded, figures.ok),
    ruleErrorsPct: share(figures.ruleErrors, figures.ok),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    rejectP99: percentile(rejectLatencies, 0.99),
    sendDelayP99: percentile(figures.sendDelays, 0.99),
    serverP99: percentile(figures.serverLatencies, 0.99),
    sendDelays: undefined,
    serverLatencies: undefined,
  };
}

/**
 * Seconds from `from` until the requests of `streams` are healthy again, in 1 s windows starting
 * at `from`: the first window that, with the window after it, has requests, a p99 at most
 * `threshold` ms, nothing but 200 answers, and a degraded share at most the baseline's + 1 point.
 * `null` when no window up to `to` is.
 */
export function recoverySeconds(records, { streams, from, to, deadlineMs, threshold, baselineDegradedPct }) {
  const healthy = [];
  for (let start = from; start + 1000 <= to; start += 1000) {
    const window = summarise(records, { streams, from: start, to: start + 1000, deadlineMs });
    healthy.push(
      window.requests > 0 &&
        window.ok === window.requests &&
        window.p99 <= threshold &&
        (Number.isNaN(window.degradedPct) ? 0 : window.degradedPct) <= baselineDegradedPct + 1,
    );
  }
  for (let index = 0; index < healthy.length; index += 1) {
    if (healthy[index] && (index + 1 === healthy.length || healthy[index + 1])) return index;
  }
  return null;
}

/** First 200 due at or after `from` (ms), or null. */
export function firstOkAfter(records, streams, from) {
  let first = Number.POSITIVE_INFINITY;
  for (let index = 0; index < records.count; index += 1) {
    const due = records.due[index];
    if (
      due >= from &&
      due < first &&
      records.status[index] === 200 &&
      streams.includes(records.stream[index])
    ) {
      first = due;
    }
  }
  return first === Number.POSITIVE_INFINITY ? null : first;
}

/**
 * Checks the node's SQLite decision log (the node must be stopped): every answered, not shed
 * decision must be stored once as a `decision` record of its tenant and event id. Returns
 * `{ checked, lost, duplicated }`, or `{ error }` when the log cannot be read.
 */
export function checkDecisionLog(dataDir, answeredByTenant) {
  const path = join(dataDir, 'decisions.db');
  if (!existsSync(path)) return { error: `no decision log at <data dir>/decisions.db` };
  let db;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const stored = new Map();
    let duplicated = 0;
    const rows = db
      .prepare(
        "SELECT tenant_id, event_id, COUNT(*) AS n FROM records WHERE kind = 'decision' GROUP BY tenant_id, event_id",
      )
      .iterate();
    for (const row of rows) {
      stored.set(`${row.tenant_id}\u0000${row.event_id}`, row.n);
      if (row.n > 1) duplicated += row.n - 1;
    }
    let lost = 0;
    let checked = 0;
    const lostSamples = [];
    for (const [tenantId, answered] of answeredByTenant) {
      for (const [eventId] of answered) {
        checked += 1;
        if (!stored.has(`${tenantId}\u0000${eventId}`)) {
          lost += 1;
          if (lostSamples.length < 5) lostSamples.push(eventId);
        }
      }
    }
    return { checked, lost, duplicated, lostSamples };
  } catch (error) {
    return { error: `decision log not readable: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    db?.close();
  }
}

/**
 * The multi-node drills' check, in the PostgreSQL decision log the nodes share (every node must be
 * stopped): every answered, not shed decision must be stored exactly once, counted by decision id.
 * `answered` is [[eventId, decisionId]...] of every stream. Also counts event ids that have more
 * than one decision (a retried request decided anew on another node) and the rows of events no
 * answer names (decided, but the client had given up). Returns `{ checked, lost, duplicated,
 * eventsDecidedTwice, rows, lostSamples }`, or `{ error }`.
 */
export async function checkPostgresDecisionLog(query, answered) {
  try {
    const { rows } = await query(
      "SELECT decision_id, count(*)::int AS n FROM decisions WHERE kind = 'decision' GROUP BY decision_id",
    );
    const stored = new Map(rows.map((row) => [row.decision_id, row.n]));
    let duplicated = 0;
    for (const n of stored.values()) if (n > 1) duplicated += n - 1;
    const twice = await query(
      `SELECT count(*)::int AS n FROM (SELECT 1 FROM decisions WHERE kind = 'decision'
         GROUP BY tenant_id, event_id HAVING count(*) > 1) AS repeated`,
    );
    const ids = new Set(answered.map(([, decisionId]) => decisionId));
    let lost = 0;
    const lostSamples = [];
    for (const id of ids) {
      if (!stored.has(id)) {
        lost += 1;
        if (lostSamples.length < 5) lostSamples.push(id);
      }
    }
    return {
      checked: ids.size,
      lost,
      duplicated,
      eventsDecidedTwice: twice.rows[0].n,
      rows: [...stored.values()].reduce((sum, n) => sum + n, 0),
      lostSamples,
    };
  } catch (error) {
    return {
      error: `PostgreSQL decision log not readable: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}
