import { VigilError } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryDecisionLog } from '../memory/memory-decision-log.js';
import { ConfigRegistry } from '../tenancy/config-registry.js';
import type { DecisionStage } from './decision-context.js';
import { DecisionService, idempotencyWindowMs } from './decision-service.js';

function setUp(stages: DecisionStage[] = [], now: () => number = Date.now, log = new MemoryDecisionLog()) {
  const registry = new ConfigRegistry();
  const at = new Date(0).toISOString();
  registry.putTenant({
    id: 't1',
    name: 'acme',
    rateLimit: null,
    maxConcurrency: null,
    createdAt: at,
    updatedAt: at,
  });
  registry.putEventType({
    tenantId: 't1',
    name: 'login',
    version: 1,
    updatedAt: at,
    schema: { fields: { account_id: { type: 'string', required: true }, ip: { type: 'ip' } } },
  });
  return { log, service: new DecisionService({ registry, log, stages, now }) };
}

const login = (id: string) => ({ type: 'login', id, fields: { account_id: 'u-1', ip: '203.0.113.9' } });

describe('DecisionService', () => {
  it('accepts with no policy and records the decision with its entities', async () => {
    const { service, log } = setUp();
    const { response, replayed } = await service.decide('t1', login('e1'));
    expect(replayed).toBe(false);
    expect(response).toMatchObject({
      event_id: 'e1',
      verdict: 'accept',
      score: 0,
      policy_version: null,
      rules: [],
    });
    const stored = await log.get('t1', response.decision_id);
    expect(stored?.entities).toEqual(['u-1', '203.0.113.9']);
    expect(stored?.response).toEqual(response);
  });

  it("stores the receiving time as an event's timestamp when it has none, per millisecond", async () => {
    let now = 1_800_000_000_000;
    const { service, log } = setUp([], () => now);
    const timestampOf = async (id: string) => {
      const { response } = await service.decide('t1', login(id));
      return (await log.get('t1', response.decision_id))?.event.timestamp;
    };
    expect(await timestampOf('same-ms-1')).toBe(new Date(now).toISOString());
    expect(await timestampOf('same-ms-2')).toBe(new Date(now).toISOString());
    now += 1;
    expect(await timestampOf('next-ms')).toBe(new Date(now).toISOString());
    now += 86_400_000;
    expect(await timestampOf('next-day')).toBe(new Date(now).toISOString());
    // A timestamp the client sent is kept as sent.
    const sent = { ...login('sent'), timestamp: '2026-11-24T12:00:00.000Z' };
    const { response } = await service.decide('t1', sent);
    expect((await log.get('t1', response.decision_id))?.event.timestamp).toBe('2026-11-24T12:00:00.000Z');
  });

  it('answers a retry with the first decision, also while the first is still pending', async () => {
    const { service, log } = setUp();
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => service.decide('t1', login('same'))));
    expect(new Set(outcomes.map((outcome) => outcome.response.decision_id)).size).toBe(1);
    expect(outcomes.filter((outcome) => !outcome.replayed)).toHaveLength(1);
    expect((await log.search({ tenantId: 't1', limit: 100 })).records).toHaveLength(1);
  });

  it('gives the answer as JSON text once, the same text to every retry and to the log', async () => {
    const log = new MemoryDecisionLog();
    const texts: (string | undefined)[] = [];
    const append = log.append.bind(log);
    log.append = (record, responseJson) => {
      texts.push(responseJson);
      return append(record, responseJson);
    };
    const { service } = setUp([], Date.now, log);
    const first = await service.decide('t1', login('json'));
    expect(JSON.parse(first.json)).toEqual(first.response);
    expect(texts).toEqual([first.json]);
    // A retry while the answer is remembered gets the text (and the object read from it).
    const again = await service.decide('t1', login('json'));
    expect(again).toEqual({ json: first.json, response: first.response, replayed: true });
    // After a restart the log answers; its stored answer serialises to the same text.
    const restarted = setUp([], Date.now, log).service;
    expect((await restarted.decide('t1', login('json'))).json).toBe(first.json);
    expect(texts).toHaveLength(1);
  });

  it('finds a decision older than its memory in the log, and forgets it after 24 hours', async () => {
    let clock = 1_000_000;
    const { service, log } = setUp([], () => clock);
    const first = await service.decide('t1', login('old'));
    clock += idempotencyWindowMs - 1;
    // A new service has an empty memory, as after a restart: only the log can answer.
    const again = setUp([], () => clock, log).service;
    expect((await again.decide('t1', login('old'))).response.decision_id).toBe(first.response.decision_id);
    clock += 2;
    const later = setUp([], () => clock, log).service;
    expect((await later.decide('t1', login('old'))).response.decision_id).not.toBe(
      first.response.decision_id,
    );
  });

  it('refuses an unknown event type and lists every invalid field', async () => {
    const { service } = setUp();
    await expect(service.decide('t1', { type: 'nope', id: 'x', fields: {} })).rejects.toMatchObject({
      code: 'unknown_event_type',
    });
    const error = await service
      .decide('t1', { type: 'login', id: 'x', fields: { ip: 'bad', other: 1 } })
      .catch((e) => e);
    expect(error).toBeInstanceOf(VigilError);
    expect((error as VigilError).details?.map((detail) => detail.path)).toEqual([
      'fields.account_id',
      'fields.ip',
      'fields.other',
    ]);
  });

  it('leaves out a stage that overruns the deadline or fails, and names it in degraded', async () => {
    const slow: DecisionStage = {
      name: 'features',
      run: () => new Promise((resolve) => setTimeout(resolve, 200)),
    };
    const failing: DecisionStage = { name: 'lists', run: () => Promise.reject(new Error('store down')) };
    const marking: DecisionStage = {
      name: 'rules',
      run: (context) => {
        context.verdict = 'review';
      },
    };
    const { service } = setUp([slow, failing, marking]);
    const { response } = await service.decide('t1', { ...login('late'), timeout_ms: 20 });
    expect(response.degraded).toEqual(['features', 'lists']);
    expect(response.verdict).toBe('review');
  });

  it('counts a reported event once per id', async () => {
    const { service } = setUp();
    expect(await service.report('t1', login('r1'))).toEqual({ event_id: 'r1', status: 'accepted' });
    expect(await service.report('t1', login('r1'))).toEqual({ event_id: 'r1', status: 'duplicate' });
  });
});
