import type { FeatureInput } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import type { EventTypeRecord } from '../ports/config-store.js';
import type { DecisionRecord, StoredEvent } from '../ports/decision-log.js';
import type { EventHistory } from '../ports/event-history.js';
import type { IpInfo } from '../rules/vigil-functions.js';
import { counterIdOf, type FeatureRecord, featureProgram } from './feature-definition.js';
import { FeatureService } from './feature-service.js';
import { MemoryCounterStore } from './memory-counter-store.js';

const t0 = 1_800_000_000_000;
const login: EventTypeRecord = {
  tenantId: 't',
  name: 'login',
  schema: { fields: { account_id: { type: 'string' }, ip: { type: 'ip' } } },
  version: 1,
  updatedAt: '2026-11-25T00:00:00.000Z',
};
const feature = (name: string, by: string[]): FeatureRecord => ({
  tenantId: 't',
  name,
  version: 1,
  updatedAt: '2026-11-25T00:00:00.000Z',
  definition: { aggregation: 'count', by, window: '1h', event_types: ['login'] } satisfies FeatureInput,
});
const event = (id: string, ip: string): StoredEvent => ({
  type: 'login',
  id,
  timestamp: '2026-11-25T00:00:00.000Z',
  fields: { account_id: 'a', ip },
});
const record = (id: string, ip: string, createdAt: number): DecisionRecord => ({
  decisionId: id,
  tenantId: 't',
  kind: 'event',
  createdAt,
  event: event(id, ip),
  verdict: null,
  response: null,
  ruleIds: [],
  entities: [],
});

/** Stored events in pages of one, optionally held before each page until `release()`. */
class ArrayHistory implements EventHistory {
  readonly records: DecisionRecord[] = [];
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;

  hold(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  async scan(tenantId: string, since: number, visit: (records: DecisionRecord[]) => Promise<void>) {
    for (const stored of this.records) {
      if (stored.tenantId !== tenantId || stored.createdAt < since) continue;
      if (this.#gate !== undefined) await this.#gate;
      await visit([stored]);
    }
  }
}

const ipInfo = (ip: string): IpInfo | undefined =>
  ip.startsWith('8.8.') ? { asn: 15169, private: false } : undefined;

function setup(features: FeatureRecord[], options: { ipInfo?: typeof ipInfo } = {}) {
  const store = new MemoryCounterStore();
  const history = new ArrayHistory();
  let now = t0;
  const service = new FeatureService({
    store,
    history,
    programsOf: () => features.map((record) => featureProgram(record, login)).filter((p) => p !== undefined),
    now: () => now,
    ...options,
  });
  /** The feature's value for a key right now. */
  const value = async (record: FeatureRecord, key: string) => {
    const program = featureProgram(record, login);
    if (program === undefined) throw new Error('no program');
    const [result] = await store.apply(now, [{ counter: program.counter, key, update: false, value: null }]);
    return result;
  };
  return { store, history, service, value, advance: (ms: number) => (now += ms), at: () => now };
}

describe('FeatureService with derived keys', () => {
  it('backfills with the same keys as live events', async () => {
    const byPrefix = feature('per_prefix', ['ip_prefix(ip, 24)']);
    const { history, service, value, advance, at } = setup([byPrefix]);
    history.records.push(record('e1', '203.0.113.5', t0 - 1000), record('e2', '203.0.113.77', t0 - 500));
    history.records.push(record('e3', '198.51.100.1', t0 - 200));
    await service.backfill('t', byPrefix.name, counterIdOf(byPrefix), 3_600_000);
    advance(1000);
    await service.observe('t', event('e4', '::ffff:203.0.113.1'), at());
    expect(await value(byPrefix, '203.0.113.0/24')).toBe(3);
    expect(await value(byPrefix, '198.51.100.0/24')).toBe(1);
  });

  it('has no asn key without IP data, and computes asn features from history once it arrives', async () => {
    const byAsn = feature('per_asn', ['asn(ip)']);
    const byAccount = feature('per_account', ['account_id']);
    const { history, service, value, advance, at } = setup([byAsn, byAccount]);
    history.records.push(record('e1', '8.8.8.8', t0 - 2000), record('e2', '8.8.4.4', t0 - 1000));
    expect(await service.rebuild([{ tenantId: 't', longestWindowMs: 3_600_000 }])).toBe(2);
    await service.observe('t', event('e3', '8.8.8.8'), at());
    history.records.push(record('e3', '8.8.8.8', at()));
    expect(await value(byAsn, 'AS15169')).toBe(0);
    expect(await value(byAccount, 'a')).toBe(3);

    advance(1000);
    await service.useIpData(ipInfo, [byAsn, byAccount]);
    expect(service.status(counterIdOf(byAsn))).toBe('ready');
    // Every stored event counts once, and the plain feature is not counted again.
    expect(await value(byAsn, 'AS15169')).toBe(3);
    expect(await value(byAccount, 'a')).toBe(3);
    await service.observe('t', event('e4', '8.8.4.4'), at());
    expect(await value(byAsn, 'AS15169')).toBe(4);
  });

  it('counts every event once when a newer backfill replaces a running one', async () => {
    const byAsn = feature('per_asn', ['asn(ip)']);
    const { history, service, value, advance } = setup([byAsn], { ipInfo });
    for (let index = 0; index < 5; index++)
      history.records.push(record(`e${index}`, '8.8.8.8', t0 - 5000 + index));
    history.hold();
    const first = service.backfill('t', byAsn.name, counterIdOf(byAsn), 3_600_000);
    advance(10);
    const second = service.backfill('t', byAsn.name, counterIdOf(byAsn), 3_600_000);
    expect(service.status(counterIdOf(byAsn))).toBe('backfilling');
    history.release();
    await Promise.all([first, second]);
    expect(service.status(counterIdOf(byAsn))).toBe('ready');
    expect(await value(byAsn, 'AS15169')).toBe(5);
  });

  it('stops the backfill of a dropped feature', async () => {
    const byAsn = feature('per_asn', ['asn(ip)']);
    const { history, service, store } = setup([byAsn], { ipInfo });
    for (let index = 0; index < 5; index++)
      history.records.push(record(`e${index}`, '8.8.8.8', t0 - 5000 + index));
    history.hold();
    const running = service.backfill('t', byAsn.name, counterIdOf(byAsn), 3_600_000);
    await service.drop([counterIdOf(byAsn)]);
    history.release();
    await running;
    expect(service.status(counterIdOf(byAsn))).toBe('ready');
    expect(store.keyCount()).toBe(0);
  });
});

describe('FeatureService backfill progress', () => {
  it('reports the share of the window replayed and the events so far, then nothing once done', async () => {
    const perAccount = feature('per_account', ['account_id']);
    const counterId = counterIdOf(perAccount);
    const seen: (ReturnType<FeatureService['progress']> | undefined)[] = [];
    const holder: { service?: FeatureService } = {};
    const history: EventHistory = {
      async scan(_tenantId, _since, visit) {
        for (let index = 0; index < 4; index++) {
          seen.push(holder.service?.progress(counterId));
          await visit([record(`e${index}`, '192.0.2.1', t0 - 3_000_000 + index * 900_000)]);
        }
        seen.push(holder.service?.progress(counterId));
      },
    };
    const service = new FeatureService({
      store: new MemoryCounterStore(),
      history,
      programsOf: () => [featureProgram(perAccount, login)].filter((program) => program !== undefined),
      now: () => t0,
    });
    holder.service = service;
    expect(service.progress(counterId)).toBeUndefined();
    await service.backfill('t', perAccount.name, counterId, 3_600_000);
    expect(seen[0]).toEqual({ fraction: 0, events: 0 });
    expect(seen.map((progress) => progress?.events)).toEqual([0, 1, 2, 3, 4]);
    const fractions = seen.map((progress) => progress?.fraction ?? -1);
    for (let index = 1; index < fractions.length; index++)
      expect(fractions[index] as number).toBeGreaterThan(fractions[index - 1] as number);
    expect(fractions[4] as number).toBeGreaterThan(0.9);
    expect(fractions[4] as number).toBeLessThanOrEqual(1);
    expect(service.progress(counterId)).toBeUndefined();
    expect(service.status(counterId)).toBe('ready');
  });
});

describe('FeatureService with last of a string field', () => {
  const lastIp: FeatureRecord = {
    ...feature('last_ip', ['account_id']),
    definition: {
      aggregation: 'last',
      field: 'ip',
      by: ['account_id'],
      window: '1h',
      event_types: ['login'],
    },
  };

  it('rebuilds the newest string of the window from the log, then follows live events', async () => {
    const { history, service, value, advance, at } = setup([lastIp]);
    expect(featureProgram(lastIp, login)?.counter.valueType).toBe('string');
    // Older than the window (and its extra bucket): not replayed.
    history.records.push(record('e0', '192.0.2.99', t0 - 2 * 3_600_000));
    history.records.push(record('e1', '203.0.113.5', t0 - 2000), record('e2', '2001:db8::1', t0 - 1000));
    expect(await service.rebuild([{ tenantId: 't', longestWindowMs: 3_600_000 }])).toBe(2);
    expect(await value(lastIp, 'a')).toBe('2001:db8::1');
    await service.observe('t', event('e3', '198.51.100.7'), at());
    expect(await value(lastIp, 'a')).toBe('198.51.100.7');
    // An event without the field does not count: the newest value stays.
    await service.observe('t', { ...event('e4', ''), fields: { account_id: 'a' } }, at());
    expect(await value(lastIp, 'a')).toBe('198.51.100.7');
    advance(3_600_000 + 60_000);
    expect(await value(lastIp, 'a')).toBeNull();
  });

  it('backfills the newest string from history', async () => {
    const { history, service, value } = setup([lastIp]);
    history.records.push(record('e1', '203.0.113.5', t0 - 2000), record('e2', '203.0.113.6', t0 - 1000));
    await service.backfill('t', lastIp.name, counterIdOf(lastIp), 3_600_000);
    expect(await value(lastIp, 'a')).toBe('203.0.113.6');
  });
});
