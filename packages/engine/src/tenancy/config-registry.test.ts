import { describe, expect, it } from 'vitest';
import type { FeatureRecord } from '../features/feature-definition.js';
import { celRuleCompiler } from '../policy/cel-rule-compiler.js';
import type { PolicyState, PolicyVersionRecord, RuleCompiler } from '../policy/policy-model.js';
import type { ApiKeyRecord, ConfigSnapshot, EventTypeRecord, TenantRecord } from '../ports/config-store.js';
import { ConfigRegistry } from './config-registry.js';

const at = '2026-01-01T00:00:00.000Z';
const later = '2026-01-02T00:00:00.000Z';

function tenant(id: string): TenantRecord {
  return { id, name: id, rateLimit: null, maxConcurrency: null, createdAt: at, updatedAt: at };
}

function key(id: string, tenantId: string): ApiKeyRecord {
  return {
    id,
    tenantId,
    scopes: ['decide'],
    description: null,
    secretHash: `hash-${id}`,
    sealedSecret: `sealed-${id}`,
    createdAt: at,
    revokedAt: null,
  };
}

function eventType(tenantId: string, name: string, version = 1): EventTypeRecord {
  return {
    tenantId,
    name,
    version,
    updatedAt: at,
    schema: { fields: { account_id: { type: 'string', required: true }, amount: { type: 'number' } } },
  };
}

function policyVersion(tenantId: string, type: string, version: number, when: string): PolicyVersionRecord {
  return {
    tenantId,
    eventType: type,
    version,
    policy: { strategy: 'worst', rules: [{ id: `r${version}`, when, verdict: 'reject' }] },
    createdAt: at,
    createdBy: 'admin',
  };
}

function state(
  tenantId: string,
  type: string,
  published: number | null,
  history: number[] = [],
): PolicyState {
  return { tenantId, eventType: type, published, history, canary: null, shadows: [], updatedAt: at };
}

function feature(tenantId: string, name: string, version = 1, window = '1h'): FeatureRecord {
  return {
    tenantId,
    name,
    version,
    updatedAt: at,
    definition: { aggregation: 'count', by: ['account_id'], window, event_types: ['login'] },
  };
}

/** Two tenants: t1 with login and payment policies and a feature, t2 with one event type. */
function baseSnapshot(): ConfigSnapshot {
  return {
    tenants: [tenant('t1'), tenant('t2')],
    keys: [key('k1', 't1'), key('k2', 't1'), key('k3', 't2')],
    eventTypes: [eventType('t1', 'login'), eventType('t1', 'payment'), eventType('t2', 'login')],
    policyVersions: [
      policyVersion('t1', 'login', 1, 'features.logins_1h >= 5'),
      policyVersion('t1', 'payment', 1, 'event.amount > 1000.0'),
    ],
    policyStates: [state('t1', 'login', 1), state('t1', 'payment', 1)],
    features: [feature('t1', 'logins_1h')],
  };
}

/** The snapshot as another node's store returns it: the same data in new objects. */
const copy = (snapshot: ConfigSnapshot): ConfigSnapshot => JSON.parse(JSON.stringify(snapshot));

/** The CEL compiler, counting the rule sets it compiles. */
function countingCompiler(): RuleCompiler & { calls: number } {
  const inner = celRuleCompiler();
  const compiler = {
    calls: 0,
    compile: (...args: Parameters<RuleCompiler['compile']>) => {
      compiler.calls += 1;
      return inner.compile(...args);
    },
  };
  return compiler;
}

function setUp() {
  const compiler = countingCompiler();
  const registry = ConfigRegistry.from(copy(baseSnapshot()), compiler);
  compiler.calls = 0;
  return { compiler, registry };
}

const noChanges = {
  tenants: [],
  deletedTenants: [],
  keys: [],
  eventTypes: [],
  features: [],
  policies: [],
  recompiled: [],
  failures: [],
};

describe('ConfigRegistry.applySnapshot', () => {
  it('builds from nothing what ConfigRegistry.from builds', () => {
    const registry = new ConfigRegistry(celRuleCompiler());
    const changes = registry.applySnapshot(copy(baseSnapshot()));
    expect(changes.tenants).toEqual(['t1', 't2']);
    expect(changes.keys).toEqual(['k1', 'k2', 'k3']);
    expect(changes.eventTypes).toHaveLength(3);
    expect(changes.recompiled).toEqual([
      { tenantId: 't1', eventType: 'login' },
      { tenantId: 't1', eventType: 'payment' },
    ]);
    expect(changes.failures).toEqual([]);
    expect(registry.activeKey('k3')?.tenantId).toBe('t2');
    expect(registry.serving('t1', 'login')?.main?.version).toBe(1);
    expect(registry.featurePrograms('t1', 'login').map((program) => program.name)).toEqual(['logins_1h']);
    expect(registry.eventType('t2', 'login')?.validate({ amount: 1 })).not.toEqual([]);
  });

  it('changes nothing and compiles nothing when the snapshot is the configuration it holds', () => {
    const { compiler, registry } = setUp();
    const serving = registry.serving('t1', 'login');
    const validator = registry.eventType('t1', 'login')?.validate;
    expect(registry.applySnapshot(copy(baseSnapshot()))).toEqual(noChanges);
    expect(compiler.calls).toBe(0);
    expect(registry.serving('t1', 'login')).toBe(serving);
    expect(registry.eventType('t1', 'login')?.validate).toBe(validator);
  });

  it('revokes a key and reports it, so that its cached credential is forgotten', () => {
    const { compiler, registry } = setUp();
    const snapshot = copy(baseSnapshot());
    (snapshot.keys[1] as ApiKeyRecord).revokedAt = later;
    const changes = registry.applySnapshot(snapshot);
    expect(changes).toEqual({ ...noChanges, keys: ['k2'] });
    expect(registry.activeKey('k2')).toBeUndefined();
    expect(registry.key('k2')?.revokedAt).toBe(later);
    expect(registry.activeKey('k1')).toBeDefined();
    expect(compiler.calls).toBe(0);
  });

  it('removes a key that is gone from the snapshot', () => {
    const { registry } = setUp();
    const snapshot = copy(baseSnapshot());
    snapshot.keys = snapshot.keys.filter((record) => record.id !== 'k1');
    expect(registry.applySnapshot(snapshot).keys).toEqual(['k1']);
    expect(registry.key('k1')).toBeUndefined();
  });

  it('stores a new draft without compiling anything, and compiles only the policy a publish changes', () => {
    const { compiler, registry } = setUp();
    const payment = registry.serving('t1', 'payment');
    const snapshot = copy(baseSnapshot());
    snapshot.policyVersions.push(policyVersion('t1', 'login', 2, 'event.amount > 5.0'));
    expect(registry.applySnapshot(snapshot)).toEqual({
      ...noChanges,
      policies: [{ tenantId: 't1', eventType: 'login' }],
    });
    expect(compiler.calls).toBe(0);
    expect(registry.policyVersion('t1', 'login', 2)?.policy.rules[0]?.id).toBe('r2');
    expect(registry.serving('t1', 'login')?.main?.version).toBe(1);

    snapshot.policyStates[0] = { ...state('t1', 'login', 2, [1]), updatedAt: later };
    const changes = registry.applySnapshot(copy(snapshot));
    expect(changes.recompiled).toEqual([{ tenantId: 't1', eventType: 'login' }]);
    expect(compiler.calls).toBe(1);
    expect(registry.serving('t1', 'login')?.main?.version).toBe(2);
    expect(registry.policyState('t1', 'login')?.history).toEqual([1]);
    expect(registry.serving('t1', 'payment')).toBe(payment);
  });

  it('recompiles the policies of a tenant whose features changed, and reports the features', () => {
    const { compiler, registry } = setUp();
    const t2Login = registry.eventType('t2', 'login');
    const snapshot = copy(baseSnapshot());
    const changed = feature('t1', 'logins_1h', 2, '2h');
    const added = feature('t1', 'logins_24h', 1, '24h');
    snapshot.features = [changed, added];
    const changes = registry.applySnapshot(copy(snapshot));
    expect(changes.features).toEqual([
      { before: feature('t1', 'logins_1h'), after: changed },
      { before: undefined, after: added },
    ]);
    expect(changes.recompiled).toEqual([
      { tenantId: 't1', eventType: 'login' },
      { tenantId: 't1', eventType: 'payment' },
    ]);
    expect(compiler.calls).toBe(2);
    expect(registry.featurePrograms('t1', 'login').map((program) => program.name)).toEqual([
      'logins_1h',
      'logins_24h',
    ]);
    expect(registry.feature('t1', 'logins_1h')?.definition.window).toBe('2h');
    expect(registry.eventType('t2', 'login')).toBe(t2Login);

    snapshot.features = [added];
    expect(registry.applySnapshot(copy(snapshot)).features).toEqual([{ before: changed, after: undefined }]);
    expect(registry.featurePrograms('t1', 'login').map((program) => program.name)).toEqual(['logins_24h']);
  });

  it('recompiles the policy of a changed event type and validates with its new schema', () => {
    const { compiler, registry } = setUp();
    const snapshot = copy(baseSnapshot());
    const changed = eventType('t1', 'payment', 2);
    changed.schema.fields.currency = { type: 'string', required: true };
    snapshot.eventTypes[1] = changed;
    const changes = registry.applySnapshot(snapshot);
    expect(changes.eventTypes).toEqual([{ tenantId: 't1', eventType: 'payment' }]);
    expect(changes.recompiled).toEqual([{ tenantId: 't1', eventType: 'payment' }]);
    expect(compiler.calls).toBe(1);
    expect(registry.eventType('t1', 'payment')?.validate({ account_id: 'u-1' })).toEqual([
      expect.objectContaining({ path: 'fields.currency' }),
    ]);
  });

  it('deletes a tenant with its keys and reports its features', () => {
    const { registry } = setUp();
    const snapshot = copy(baseSnapshot());
    snapshot.tenants = snapshot.tenants.filter((record) => record.id !== 't1');
    snapshot.keys = snapshot.keys.filter((record) => record.tenantId !== 't1');
    snapshot.eventTypes = snapshot.eventTypes.filter((record) => record.tenantId !== 't1');
    snapshot.policyVersions = [];
    snapshot.policyStates = [];
    snapshot.features = [];
    const changes = registry.applySnapshot(snapshot);
    expect(changes.deletedTenants).toEqual(['t1']);
    expect(changes.keys).toEqual(['k1', 'k2']);
    expect(changes.features).toEqual([{ before: feature('t1', 'logins_1h'), after: undefined }]);
    expect(registry.tenant('t1')).toBeUndefined();
    expect(registry.key('k1')).toBeUndefined();
    expect(registry.serving('t1', 'login')).toBeUndefined();
    expect(registry.activeKey('k3')).toBeDefined();
  });

  it('updates a tenant record without touching its policies', () => {
    const { compiler, registry } = setUp();
    const snapshot = copy(baseSnapshot());
    snapshot.tenants[0] = { ...tenant('t1'), rateLimit: { rps: 5, burst: 10 }, updatedAt: later };
    expect(registry.applySnapshot(snapshot)).toEqual({ ...noChanges, tenants: ['t1'] });
    expect(registry.tenant('t1')?.rateLimit).toEqual({ rps: 5, burst: 10 });
    expect(registry.serving('t1', 'login')?.main?.version).toBe(1);
    expect(compiler.calls).toBe(0);
  });

  it('keeps serving the previous version when the new one does not compile, and reports it', () => {
    const { registry } = setUp();
    const snapshot = copy(baseSnapshot());
    snapshot.policyVersions.push(policyVersion('t1', 'payment', 2, 'event.no_such_field > 1'));
    snapshot.policyStates[1] = { ...state('t1', 'payment', 2, [1]), updatedAt: later };
    const changes = registry.applySnapshot(snapshot);
    expect(changes.failures).toEqual([
      expect.objectContaining({ tenantId: 't1', eventType: 'payment', error: expect.any(Error) }),
    ]);
    expect(registry.serving('t1', 'payment')?.main?.version).toBe(1);
    expect(registry.policyState('t1', 'payment')?.published).toBe(1);
    expect(registry.serving('t1', 'login')?.main?.version).toBe(1);
  });
});
