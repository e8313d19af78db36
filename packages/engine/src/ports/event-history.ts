import type { DecisionRecord } from './decision-log.js';

/**
 * Stored events in the order they were received, for rebuilding features after a restart or
 * computing a new feature from history.
 *
 * Contract: `scan` calls `visit` with pages of the tenant's records (decisions and reported events)
 * whose `createdAt` is at or after `since`, in `createdAt` order, waiting for each page's promise
 * before reading the next. A record durable when the scan starts is visited exactly once.
 */
export interface EventHistory {
  scan(tenantId: string, since: number, visit: (records: DecisionRecord[]) => Promise<void>): Promise<void>;
}
