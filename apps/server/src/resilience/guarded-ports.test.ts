import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DecisionContext, DecisionRecord, DecisionStage, ListDefinition } from '@vigil/engine';
import { createEnrichment } from '@vigil/enrichment';
import { VigilError } from '@vigil/protocol';
import { SqliteConfigStore, SqliteDecisionLog, SqliteListStore } from '@vigil/store-sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditEntry } from '../audit.js';
import { CircuitBreaker } from './breakers.js';
import { ComponentGuard } from './component-guard.js';
import { type Component, FaultInjector } from './faults.js';
import {
  DegradationTrackingStage,
  guardConfigStore,
  guardDecisionLog,
  guardEnrichment,
  guardListStore,
  storeWriteGuard,
} from './guarded-ports.js';

let dir: string;
let injector: FaultInjector;
const guardOf = (component: Component) =>
  new ComponentGuard(component, injector, new CircuitBreaker(component));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vigil-guarded-'));
  injector = new FaultInjector();
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function failure(promise: Promise<unknown>): Promise<VigilError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(VigilError);
    return error as VigilError;
  }
  throw new Error('expected a failure');
}

function list(tenantId: string): ListDefinition {
  const now = new Date().toISOString();
  return {
    tenantId,
    name: 'blocked',
    kind: 'block',
    type: 'string',
    description: null,
    createdAt: now,
    updatedAt: now,
  };
}

/** What the tracking stage reads and writes of a decision. */
function contextOf(tenantId: string): DecisionContext {
  const degraded: string[] = [];
  return {
    tenantId,
    degraded,
    markDegraded(component: string) {
      if (!degraded.includes(component)) degraded.push(component);
    },
  } as unknown as DecisionContext;
}

describe('guarded list store', () => {
  it('fails the in-memory lookups and the writes of the faulted tenant only', async () => {
    const raw = new SqliteListStore({ path: join(dir, 'lists.db'), sweepIntervalMs: 0 });
    const lists = guardListStore(raw, guardOf('list_store'));
    for (const tenant of ['t_a', 't_b']) {
      await lists.putList(list(tenant));
      await lists.putEntries(tenant, 'blocked', [
        { value: 'x', expiresAt: null, note: null, updatedAt: Date.now() },
      ]);
    }
    injector.add({ component: 'list_store', kind: 'outage', tenant: 't_a', duration_seconds: 60 });
    expect(() => lists.contains('t_a', 'blocked', 'x')).toThrow(/list_store is unavailable: injected outage/);
    expect(lists.contains('t_b', 'blocked', 'x')).toBe(true);
    const error = await failure(lists.putEntries('t_a', 'blocked', []));
    expect({ code: error.code, status: error.status }).toEqual({
      code: 'component_unavailable',
      status: 503,
    });
    expect(await lists.size('t_b', 'blocked')).toBe(1);
    // Names serve the rule checker, not a store round trip: never failed.
    expect(lists.names('t_a')).toEqual(['blocked']);
    await lists.close();
  });

  it('keeps answering lookups from memory when failed writes open the breaker', async () => {
    /** A store whose writes fail while `down`, as a networked store's do in an outage. */
    class FailingWrites extends SqliteListStore {
      down = false;
      override putEntries(...args: Parameters<SqliteListStore['putEntries']>) {
        return this.down ? Promise.reject(new Error('store down')) : super.putEntries(...args);
      }
    }
    const raw = new FailingWrites({ path: join(dir, 'lists.db'), sweepIntervalMs: 0 });
    const breaker = new CircuitBreaker('list_store', { minimumRps: 0.1, samplingMs: 10_000 });
    const lists = guardListStore(raw, new ComponentGuard('list_store', injector, breaker));
    await lists.putList(list('t_a'));
    await lists.putEntries('t_a', 'blocked', [
      { value: 'x', expiresAt: null, note: null, updatedAt: Date.now() },
    ]);
    raw.down = true;
    for (let attempt = 0; attempt < 20 && breaker.closed; attempt++) {
      await lists.putEntries('t_a', 'blocked', []).catch(() => undefined);
    }
    expect(breaker.state).toBe('open');
    expect((await failure(lists.putEntries('t_a', 'blocked', []))).message).toMatch(/circuit breaker open/);
    expect(lists.contains('t_a', 'blocked', 'x')).toBe(true);
    expect(lists.contains('t_a', 'blocked', 'y')).toBe(false);
    await raw.close();
  });

  it('names list_store and external_data in degraded when a decision’s lookups fail', () => {
    const listGuard = guardOf('list_store');
    const externalGuard = guardOf('external_data');
    const raw = new SqliteListStore({ path: join(dir, 'lists.db'), sweepIntervalMs: 0 });
    const lists = guardListStore(raw, listGuard);
    const enrichment = guardEnrichment(
      createEnrichment({ ipDatabase: Promise.reject(new Error('none')) }),
      externalGuard,
    );
    const rules: DecisionStage = {
      name: 'rules',
      run(context) {
        for (const call of [
          () => lists.contains(context.tenantId, 'blocked', 'x'),
          () => enrichment.isDisposableEmail('a@mailinator.com'),
        ]) {
          try {
            call();
          } catch {
            // A failing service makes its rule errored; the decision goes on.
          }
        }
      },
    };
    const stage = new DegradationTrackingStage(rules, listGuard, externalGuard);
    const run = (tenantId: string) => {
      const context = contextOf(tenantId);
      stage.run(context);
      return context.degraded;
    };
    expect(run('t_a')).toEqual([]);
    injector.add({ component: 'external_data', kind: 'error', tenant: 't_a', duration_seconds: 60 });
    expect(run('t_a')).toEqual(['external_data']);
    expect(run('t_b')).toEqual([]);
    injector.add({ component: 'list_store', kind: 'latency', latency_ms: 100, duration_seconds: 60 });
    expect(run('t_b')).toEqual(['list_store']);
    expect(run('t_a')).toEqual(['list_store', 'external_data']);
    // Outside a tracked evaluation there is no tenant: only global faults apply.
    expect(enrichment.isDisposableEmail('a@mailinator.com')).toBe(true);
    return raw.close();
  });
});

describe('guarded decision log', () => {
  it('never fails an append, fails guarded reads, and reports degraded decisions once', async () => {
    const raw = new SqliteDecisionLog({ path: join(dir, 'decisions.db') });
    const seen: [string, readonly string[]][] = [];
    const log = guardDecisionLog(raw, guardOf('decision_log'), (tenant, degraded) =>
      seen.push([tenant, degraded]),
    );
    const record: DecisionRecord = {
      decisionId: 'd-1',
      tenantId: 't_a',
      kind: 'decision',
      createdAt: Date.now(),
      event: { type: 'payment', id: 'e-1', timestamp: new Date().toISOString(), fields: {} },
      verdict: 'accept',
      response: {
        decision_id: 'd-1',
        event_id: 'e-1',
        verdict: 'accept',
        score: 0,
        rules: [],
        tags: [],
        policy_version: null,
        degraded: ['features'],
        errors: [],
        latency_ms: 1,
      },
      ruleIds: [],
      entities: [],
    };
    injector.add({ component: 'decision_log', kind: 'outage', duration_seconds: 60 });
    await log.append(record);
    expect(seen).toEqual([['t_a', ['features']]]);
    expect((await log.findByEventId('t_a', 'e-1', 0, 'decision'))?.decisionId).toBe('d-1');
    expect((await failure(log.get('t_a', 'd-1'))).message).toMatch(/^decision_log is unavailable/);
    // The record is there: only the guarded read was failed.
    expect((await raw.get('t_a', 'd-1'))?.decisionId).toBe('d-1');
    await log.close();
  });

  it('guards the background store writes it is given through storeWriteGuard', async () => {
    const guard = guardOf('decision_log');
    const write = storeWriteGuard(guard);
    let writes = 0;
    const batch = async () => ++writes;
    expect(await write(batch)).toBe(1);
    const fault = injector.add({ component: 'decision_log', kind: 'outage', duration_seconds: 60 });
    await failure(write(batch));
    expect(writes).toBe(1);
    injector.remove(fault.id);
    expect(await write(batch)).toBe(2);
  });
});

describe('guarded config store', () => {
  it('fails the writes of the faulted tenant (found in the audit entry) and keeps others working', async () => {
    const raw = new SqliteConfigStore(join(dir, 'config.db'));
    const store = guardConfigStore(raw, guardOf('config_store'));
    const tenant = (id: string) => ({
      id,
      name: id,
      rateLimit: null,
      maxConcurrency: null,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    });
    injector.add({ component: 'config_store', kind: 'error', tenant: 't_a', duration_seconds: 60 });
    const error = await failure(
      store.putTenant(tenant('t_a'), auditEntry('admin', 't_a', 'tenant.create', 't_a', null, {})),
    );
    expect(error.message).toMatch(/config_store is unavailable: injected error for tenant t_a/);
    await store.putTenant(tenant('t_b'), auditEntry('admin', 't_b', 'tenant.create', 't_b', null, {}));
    expect((await store.load()).tenants.map((record) => record.id)).toEqual(['t_b']);
    injector.add({ component: 'config_store', kind: 'outage', duration_seconds: 60 });
    await failure(store.load());
    await store.close();
  });
});
