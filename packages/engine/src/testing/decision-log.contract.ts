import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DecisionLog, DecisionRecord } from '../ports/decision-log.js';

let sequence = 0;

/** A record with sensible defaults; override what the test is about. */
export function sampleRecord(overrides: Partial<DecisionRecord> = {}): DecisionRecord {
  sequence += 1;
  const eventId = overrides.event?.id ?? `evt-${sequence}`;
  const decisionId = overrides.decisionId ?? `dec-${sequence}-${Math.random().toString(36).slice(2)}`;
  return {
    decisionId,
    tenantId: 'tenant-a',
    kind: 'decision',
    createdAt: 1_700_000_000_000 + sequence,
    event: { type: 'payment', id: eventId, timestamp: '2026-11-24T12:00:00Z', fields: { account_id: 'u-1' } },
    verdict: 'accept',
    response: {
      decision_id: decisionId,
      event_id: eventId,
      verdict: overrides.verdict ?? 'accept',
      score: 0,
      rules: [],
      tags: [],
      policy_version: null,
      degraded: [],
      errors: [],
      latency_ms: 0.5,
    },
    ruleIds: [],
    entities: ['u-1'],
    ...overrides,
  };
}

/**
 * The contract every `DecisionLog` adapter must meet. Each adapter's test calls this with a
 * factory for a fresh, empty log.
 */
export function decisionLogContract(name: string, open: () => Promise<DecisionLog>): void {
  describe(`${name} meets the DecisionLog contract`, () => {
    let log: DecisionLog;
    beforeEach(async () => {
      log = await open();
    });
    afterEach(async () => {
      await log.close();
    });

    it('reads back an appended record, whole', async () => {
      const record = sampleRecord({ features: { logins_1h: 3 }, ruleIds: ['r1'], verdict: 'review' });
      await log.append(record);
      expect(await log.get('tenant-a', record.decisionId)).toEqual(record);
    });

    it('scopes every read to its tenant', async () => {
      const record = sampleRecord({ tenantId: 'tenant-b', entities: ['shared-ip'] });
      await log.append(record);
      expect(await log.get('tenant-a', record.decisionId)).toBeUndefined();
      expect(await log.findByEventId('tenant-a', record.event.id, 0, 'decision')).toBeUndefined();
      expect((await log.search({ tenantId: 'tenant-a', entity: 'shared-ip', limit: 10 })).records).toEqual(
        [],
      );
      expect(
        (await log.search({ tenantId: 'tenant-b', entity: 'shared-ip', limit: 10 })).records,
      ).toHaveLength(1);
    });

    it('ignores a second record with the same decision id', async () => {
      const record = sampleRecord();
      await log.append(record);
      await log.append({ ...record, verdict: 'reject' });
      const page = await log.search({ tenantId: 'tenant-a', limit: 10 });
      expect(page.records).toHaveLength(1);
      expect(page.records[0]?.verdict).toBe('accept');
    });

    it('finds by event id, per kind and not before `since`', async () => {
      const decision = sampleRecord({ event: { type: 'payment', id: 'same', timestamp: 'x', fields: {} } });
      await log.append(decision);
      expect((await log.findByEventId('tenant-a', 'same', 0, 'decision'))?.decisionId).toBe(
        decision.decisionId,
      );
      expect(await log.findByEventId('tenant-a', 'same', 0, 'event')).toBeUndefined();
      expect(await log.findByEventId('tenant-a', 'same', decision.createdAt + 1, 'decision')).toBeUndefined();
    });

    it('makes every concurrently appended record durable before resolving', async () => {
      const records = Array.from({ length: 500 }, () => sampleRecord());
      await Promise.all(records.map((record) => log.append(record)));
      expect(log.queueDepth()).toBe(0);
      const found = await Promise.all(records.map((record) => log.get('tenant-a', record.decisionId)));
      expect(found.every((record) => record !== undefined)).toBe(true);
    });

    it('searches by entity, verdict, rule and time range, newest first', async () => {
      const a = sampleRecord({
        entities: ['u-1', '198.51.100.7'],
        verdict: 'reject',
        ruleIds: ['brute-force'],
      });
      const b = sampleRecord({ entities: ['u-2'], verdict: 'accept' });
      const c = sampleRecord({ entities: ['u-1'], verdict: 'review', ruleIds: ['new-device'] });
      for (const record of [a, b, c]) await log.append(record);
      const ids = async (query: Partial<Parameters<DecisionLog['search']>[0]>) =>
        (await log.search({ tenantId: 'tenant-a', limit: 10, ...query })).records.map((r) => r.decisionId);
      expect(await ids({ entity: 'u-1' })).toEqual([c.decisionId, a.decisionId]);
      expect(await ids({ entity: '198.51.100.7' })).toEqual([a.decisionId]);
      expect(await ids({ verdict: 'accept' })).toEqual([b.decisionId]);
      expect(await ids({ rule: 'new-device' })).toEqual([c.decisionId]);
      expect(await ids({ from: b.createdAt, to: c.createdAt })).toEqual([b.decisionId]);
      expect(await ids({ entity: 'u-1', from: c.createdAt })).toEqual([c.decisionId]);
    });

    it('pages through every match with cursors, without gaps or repeats', async () => {
      const records = Array.from({ length: 23 }, () => sampleRecord({ entities: ['acct'] }));
      for (const record of records) await log.append(record);
      for (const entity of [undefined, 'acct']) {
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await log.search({
            tenantId: 'tenant-a',
            limit: 5,
            ...(entity !== undefined && { entity }),
            ...(cursor !== undefined && { cursor }),
          });
          seen.push(...page.records.map((record) => record.decisionId));
          cursor = page.nextCursor;
        } while (cursor !== undefined);
        expect(seen).toEqual(records.map((record) => record.decisionId).reverse());
      }
    });

    it('attaches shadow results to their decision, for its tenant only', async () => {
      const record = sampleRecord();
      await log.append(record);
      const shadow = { version: 4, verdict: 'review' as const, score: 40, rules: ['r2'], errors: [] };
      await log.recordShadows('tenant-a', record.decisionId, [shadow]);
      await log.recordShadows('tenant-b', record.decisionId, [{ ...shadow, version: 9 }]);
      expect((await log.get('tenant-a', record.decisionId))?.shadows).toEqual([shadow]);
    });

    it('keeps feedback per event and tenant', async () => {
      await log.addFeedback({
        tenantId: 'tenant-a',
        event_id: 'e1',
        label: 'fraud',
        source: 'chargeback',
        createdAt: 1,
      });
      await log.addFeedback({ tenantId: 'tenant-b', event_id: 'e1', label: 'legit', createdAt: 2 });
      expect(await log.listFeedback('tenant-a', 'e1')).toEqual([
        { tenantId: 'tenant-a', event_id: 'e1', label: 'fraud', source: 'chargeback', createdAt: 1 },
      ]);
    });

    it('deletes one tenant and nothing else', async () => {
      const mine = sampleRecord();
      const theirs = sampleRecord({ tenantId: 'tenant-b' });
      await log.append(mine);
      await log.append(theirs);
      await log.deleteTenant('tenant-a');
      expect(await log.get('tenant-a', mine.decisionId)).toBeUndefined();
      expect(await log.get('tenant-b', theirs.decisionId)).toBeDefined();
    });
  });
}
