import type { DecisionResponse, FeedbackRequest, Verdict } from '@vigil/protocol';

/** An event as stored: its envelope and fields, with the time Vigil took for it. */
export interface StoredEvent {
  type: string;
  id: string;
  /** RFC 3339; the client's timestamp, else the server's receive time. */
  timestamp: string;
  fields: Record<string, unknown>;
}

/** One durable entry: a decision with its event, or an event reported without a decision. */
export interface DecisionRecord {
  /** Unique across tenants; for reported events, an id of the same form. */
  decisionId: string;
  tenantId: string;
  kind: 'decision' | 'event';
  /** Milliseconds since the epoch at which the node received the event. */
  createdAt: number;
  event: StoredEvent;
  /** Null for reported events. */
  verdict: Verdict | null;
  /** The answer as it was sent, so an idempotent retry gets the same bytes back. */
  response: DecisionResponse | null;
  /** Ids of the rules that hit; searchable. */
  ruleIds: string[];
  /** Values of the event's entity fields (accounts, IPs, emails...); searchable. */
  entities: string[];
  /** Feature values the decision saw, for explanation and backtests. */
  features?: Record<string, unknown>;
  /** Results of shadow versions, recorded after the answer. */
  shadows?: ShadowResult[];
}

/** What a shadow version would have decided. */
export interface ShadowResult {
  version: number;
  verdict: Verdict;
  score: number;
  rules: string[];
  errors: string[];
}

export interface DecisionQuery {
  tenantId: string;
  entity?: string;
  verdict?: Verdict;
  rule?: string;
  /** Inclusive lower bound, epoch ms. */
  from?: number;
  /** Exclusive upper bound, epoch ms. */
  to?: number;
  limit: number;
  /** Opaque cursor from a previous page. */
  cursor?: string;
}

export interface DecisionPage {
  records: DecisionRecord[];
  /** Present when more records may follow. */
  nextCursor?: string;
}

export interface FeedbackRecord extends FeedbackRequest {
  tenantId: string;
  createdAt: number;
}

/**
 * The decision log: the durable record of every answered decision and reported event.
 *
 * Contract:
 * - `append` resolves only once the record survives a crash of this process (SIGKILL); callers
 *   answer the client after it resolves. Adapters batch concurrent appends into one write.
 * - A second record with the same `decisionId` is ignored (idempotent delivery).
 * - Reads see every record whose `append` has resolved.
 * - Every read is scoped to one tenant; no call returns another tenant's record.
 */
export interface DecisionLog {
  /**
   * `responseJson`, when given, is `JSON.stringify(record.response)` as the caller already made
   * it (the answer's bytes), so an adapter that stores the response as JSON need not serialise it
   * again.
   */
  append(record: DecisionRecord, responseJson?: string): Promise<void>;
  get(tenantId: string, decisionId: string): Promise<DecisionRecord | undefined>;
  /** The newest record of this kind for an event id at or after `since` (epoch ms), for idempotency. */
  findByEventId(
    tenantId: string,
    eventId: string,
    since: number,
    kind: DecisionRecord['kind'],
  ): Promise<DecisionRecord | undefined>;
  search(query: DecisionQuery): Promise<DecisionPage>;
  /** Attaches shadow results to a stored decision; `get` returns them with it. */
  recordShadows(tenantId: string, decisionId: string, results: ShadowResult[]): Promise<void>;
  addFeedback(feedback: FeedbackRecord): Promise<void>;
  listFeedback(tenantId: string, eventId: string): Promise<FeedbackRecord[]>;
  /** Removes every record of a tenant (tenant deletion). */
  deleteTenant(tenantId: string): Promise<void>;
  /** Records accepted by `append` and not yet durable. */
  queueDepth(): number;
  /** Waits until every appended record is durable, then releases resources. */
  close(): Promise<void>;
}
