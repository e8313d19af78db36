import { VigilError } from '@vigil/protocol';
import type {
  DecisionLog,
  DecisionPage,
  DecisionQuery,
  DecisionRecord,
  FeedbackRecord,
  ShadowResult,
} from '../ports/decision-log.js';

/**
 * A decision log in process memory, for tests and tools that need no durability. It meets the
 * same contract as the stored adapters, except that nothing survives the process.
 */
export class MemoryDecisionLog implements DecisionLog {
  readonly #records: DecisionRecord[] = [];
  readonly #byId = new Map<string, DecisionRecord>();
  #feedback: FeedbackRecord[] = [];

  async append(record: DecisionRecord): Promise<void> {
    if (this.#byId.has(record.decisionId)) return;
    this.#byId.set(record.decisionId, record);
    this.#records.push(record);
  }

  async get(tenantId: string, decisionId: string): Promise<DecisionRecord | undefined> {
    const record = this.#byId.get(decisionId);
    return record?.tenantId === tenantId ? record : undefined;
  }

  async findByEventId(
    tenantId: string,
    eventId: string,
    since: number,
    kind: DecisionRecord['kind'],
  ): Promise<DecisionRecord | undefined> {
    return this.#records.findLast(
      (r) => r.tenantId === tenantId && r.event.id === eventId && r.kind === kind && r.createdAt >= since,
    );
  }

  async search(query: DecisionQuery): Promise<DecisionPage> {
    let position = this.#records.length;
    if (query.cursor !== undefined) {
      position = /^\d{1,16}$/.test(query.cursor) ? Number(query.cursor) : Number.NaN;
      if (!(position >= 0 && position <= this.#records.length)) {
        throw new VigilError('invalid_request', {
          details: [{ path: 'cursor', message: 'is not a cursor from this API' }],
        });
      }
    }
    const records: DecisionRecord[] = [];
    for (let index = position - 1; index >= 0; index -= 1) {
      const record = this.#records[index] as DecisionRecord;
      if (!matches(record, query)) continue;
      if (records.length === query.limit) return { records, nextCursor: String(index + 1) };
      records.push(record);
    }
    return { records };
  }

  async recordShadows(tenantId: string, decisionId: string, results: ShadowResult[]): Promise<void> {
    const record = await this.get(tenantId, decisionId);
    if (record !== undefined) record.shadows = [...(record.shadows ?? []), ...results];
  }

  async addFeedback(feedback: FeedbackRecord): Promise<void> {
    this.#feedback.push(feedback);
  }

  async listFeedback(tenantId: string, eventId: string): Promise<FeedbackRecord[]> {
    return this.#feedback.filter((f) => f.tenantId === tenantId && f.event_id === eventId);
  }

  async deleteTenant(tenantId: string): Promise<void> {
    for (let index = this.#records.length - 1; index >= 0; index -= 1) {
      const record = this.#records[index] as DecisionRecord;
      if (record.tenantId !== tenantId) continue;
      this.#records.splice(index, 1);
      this.#byId.delete(record.decisionId);
    }
    this.#feedback = this.#feedback.filter((f) => f.tenantId !== tenantId);
  }

  queueDepth(): number {
    return 0;
  }

  async close(): Promise<void> {}
}

function matches(record: DecisionRecord, query: DecisionQuery): boolean {
  return (
    record.tenantId === query.tenantId &&
    (query.entity === undefined || record.entities.includes(query.entity)) &&
    (query.verdict === undefined || record.verdict === query.verdict) &&
    (query.rule === undefined || record.ruleIds.includes(query.rule)) &&
    (query.from === undefined || record.createdAt >= query.from) &&
    (query.to === undefined || record.createdAt < query.to)
  );
}
