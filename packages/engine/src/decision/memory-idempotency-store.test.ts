import type { DecisionResponse } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryDecisionLog } from '../memory/memory-decision-log.js';
import type { DecisionRecord } from '../ports/decision-log.js';
import type { IdempotencyStore } from '../ports/idempotency-store.js';
import { ConfigRegistry } from '../tenancy/config-registry.js';
import { idempotencyStoreContract } from '../testing/idempotency-store.contract.js';
import type { DecisionStage } from './decision-context.js';
import { DecisionService } from './decision-service.js';
import { MemoryIdempotencyStore } from './memory-idempotency-store.js';

idempotencyStoreContract('MemoryIdempotencyStore', async () => {
  const a = new MemoryIdempotencyStore();
  return { a, b: a.another() };
});

describe('MemoryIdempotencyStore', () => {
  it('keeps at most its limit of ids, dropping the oldest written', async () => {
    const store = new MemoryIdempotencyStore({ maxEntries: 3 });
    for (const id of ['a', 'b', 'c', 'd']) await store.claim('t1', 'decision', id, 60_000);
    expect(store.size).toBe(3);
    expect(await store.claim('t1', 'decision', 'a', 60_000)).toEqual({ state: 'claimed' });
    expect(await store.claim('t1', 'decision', 'd', 60_000)).toEqual({ state: 'pending' });
  });
});

/** A node: its own decision log (as if the other's records had not reached it yet) and one shared store. */
function node(shared: IdempotencyStore, stages: DecisionStage[] = [], log = new MemoryDecisionLog()) {
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
    schema: { fields: { account_id: { type: 'string', required: true } } },
  });
  return { log, service: new DecisionService({ registry, log, stages, sharedIdempotency: shared }) };
}

const login = (id: string, timeoutMs?: number) => ({
  type: 'login',
  id,
  fields: { account_id: 'u-1' },
  ...(timeoutMs !== undefined && { timeout_ms: timeoutMs }),
});

/** A stage that counts the decisions it takes part in (features count each event once). */
function countingStage() {
  const stage = { name: 'features', runs: 0, run: () => void stage.runs++ };
  return stage;
}

/** A store whose every call fails, as Redis down. */
const unreachable: IdempotencyStore = {
  claim: () => Promise.reject(new Error('connect ECONNREFUSED')),
  complete: () => Promise.reject(new Error('connect ECONNREFUSED')),
  release: () => Promise.reject(new Error('connect ECONNREFUSED')),
};

/** Resolves after pending completions (fire-and-forget) had their turn. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('DecisionService with a shared idempotency store', () => {
  it('answers an event id decided on node A with the same decision on node B, replayed, counted once', async () => {
    const shared = new MemoryIdempotencyStore();
    const stage = countingStage();
    const a = node(shared, [stage]);
    const b = node(shared.another(), [stage]);
    const first = await a.service.decide('t1', login('e1'));
    await flush();
    const again = await b.service.decide('t1', login('e1'));
    expect(again).toEqual({ json: first.json, response: first.response, replayed: true });
    expect(stage.runs).toBe(1);
    // Node B remembers it now: the next retry there is answered from its own index.
    expect(await b.service.decide('t1', login('e1'))).toEqual({
      json: first.json,
      response: first.response,
      replayed: true,
    });
    expect((await b.log.search({ tenantId: 't1', limit: 10 })).records).toHaveLength(0);
  });

  it('decides concurrent duplicates on two nodes once; the other waits and replays the answer', async () => {
    const shared = new MemoryIdempotencyStore();
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const stage = {
      name: 'features',
      runs: 0,
      run: () => {
        stage.runs++;
        return gate;
      },
    };
    const a = node(shared, [stage]);
    const b = node(shared.another(), [stage]);
    const onA = a.service.decide('t1', login('race', 2000));
    const onB = b.service.decide('t1', login('race', 2000));
    setTimeout(open, 30);
    const outcomes = await Promise.all([onA, onB]);
    expect(stage.runs).toBe(1);
    expect(outcomes[0].response.decision_id).toBe(outcomes[1].response.decision_id);
    expect(outcomes.map((outcome) => outcome.replayed).sort()).toEqual([false, true]);
  });

  it('refuses a duplicate with a retryable 409 conflict while the other node is still deciding at its deadline', async () => {
    const shared = new MemoryIdempotencyStore();
    let open = () => {};
    const stuck: DecisionStage = {
      name: 'features',
      run: () =>
        new Promise<void>((resolve) => {
          open = resolve;
        }),
    };
    const a = node(shared, [stuck]);
    const b = node(shared.another());
    const onA = a.service.decide('t1', login('slow', 5000));
    await flush();
    await expect(b.service.decide('t1', login('slow', 20))).rejects.toMatchObject({
      code: 'conflict',
      status: 409,
      retryable: true,
    });
    open();
    const decided = await onA;
    await flush();
    // Once A is done, B's retry gets A's answer.
    expect(await b.service.decide('t1', login('slow', 20))).toEqual({
      json: decided.json,
      response: decided.response,
      replayed: true,
    });
  });

  it('frees the claim when the decision fails, so a retry on another node decides', async () => {
    const shared = new MemoryIdempotencyStore();
    const failingLog = new MemoryDecisionLog();
    failingLog.append = () => Promise.reject(new Error('disk full'));
    const a = node(shared, [], failingLog);
    const b = node(shared.another());
    await expect(a.service.decide('t1', login('e1'))).rejects.toThrow('disk full');
    await flush();
    const retried = await b.service.decide('t1', login('e1'));
    expect(retried.replayed).toBe(false);
  });

  it('completes the shared store from the log when the log knew the id but the store did not', async () => {
    const shared = new MemoryIdempotencyStore();
    const log = new MemoryDecisionLog();
    const a = node(new MemoryIdempotencyStore(), [], log);
    const first = await a.service.decide('t1', login('old'));
    // A node whose log holds the record (delivered) but whose shared store lost the id.
    const b = node(shared, [], log);
    expect(await b.service.decide('t1', login('old'))).toEqual({
      json: first.json,
      response: first.response,
      replayed: true,
    });
    await flush();
    expect(await shared.claim('t1', 'decision', 'old', 1000)).toEqual({
      state: 'done',
      response: first.response,
    });
  });

  it('decides on what the node knows when the shared store is unreachable, never failing', async () => {
    const stage = countingStage();
    const { service, log } = node(unreachable, [stage]);
    const first = await service.decide('t1', login('e1'));
    expect(first.replayed).toBe(false);
    expect(await service.decide('t1', login('e1'))).toEqual({
      json: first.json,
      response: first.response,
      replayed: true,
    });
    // After a restart (an empty index), the log still answers.
    const restarted = node(unreachable, [stage], log);
    expect(await restarted.service.decide('t1', login('e1'))).toEqual({
      json: first.json,
      response: first.response,
      replayed: true,
    });
    expect(stage.runs).toBe(1);
    expect(await service.report('t1', login('r1'))).toEqual({ event_id: 'r1', status: 'accepted' });
  });

  it('does not let a failing log lookup go unhandled while the claim is awaited', async () => {
    const log = new MemoryDecisionLog();
    log.findByEventId = () => Promise.reject(new Error('lookup failed'));
    const slowClaim: IdempotencyStore = {
      claim: () => new Promise((resolve) => setTimeout(() => resolve({ state: 'claimed' }), 20)),
      complete: async () => {},
      release: async () => {},
    };
    const { service } = node(slowClaim, [], log);
    await expect(service.decide('t1', login('e1'))).rejects.toThrow('lookup failed');
  });

  it('acknowledges a reported event id seen on another node as a duplicate', async () => {
    const shared = new MemoryIdempotencyStore();
    const a = node(shared);
    const b = node(shared.another());
    expect(await a.service.report('t1', login('r1'))).toEqual({ event_id: 'r1', status: 'accepted' });
    await flush();
    expect(await b.service.report('t1', login('r1'))).toEqual({ event_id: 'r1', status: 'duplicate' });
    // Decisions and reported events are separate id spaces.
    expect((await b.service.decide('t1', login('r1'))).replayed).toBe(false);
    const stored: DecisionRecord[] = (await b.log.search({ tenantId: 't1', limit: 10 })).records;
    expect(stored.map((record) => record.kind)).toEqual(['decision']);
    const response: DecisionResponse | null | undefined = stored[0]?.response;
    expect(response?.event_id).toBe('r1');
  });
});
