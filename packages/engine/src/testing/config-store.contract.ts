import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FeatureRecord } from '../features/feature-definition.js';
import type { PolicyState, PolicyVersionRecord } from '../policy/policy-model.js';
import type {
  ApiKeyRecord,
  AuditEntry,
  ConfigStore,
  EventTypeRecord,
  TenantRecord,
} from '../ports/config-store.js';

/** A fresh, empty store, and how to open another store over the same data (after `close`). */
export interface OpenedConfigStore {
  store: ConfigStore;
  reopen: () => Promise<ConfigStore>;
}

const at = '2026-11-24T12:00:00.000Z';

export function sampleTenant(id: string, overrides: Partial<TenantRecord> = {}): TenantRecord {
  return {
    id,
    name: `Tenant ${id}`,
    rateLimit: { rps: 100, burst: 200 },
    maxConcurrency: 10,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  };
}

export function sampleAudit(
  action: string,
  tenantId: string | null,
  overrides: Partial<AuditEntry> = {},
): AuditEntry {
  return {
    at,
    actor: 'admin',
    tenantId,
    action,
    target: tenantId ?? 'platform',
    diff: { before: null, after: { x: 1 } },
    ...overrides,
  };
}

function key(id: string, tenantId: string): ApiKeyRecord {
  return {
    id,
    tenantId,
    scopes: ['decide'],
    description: null,
    secretHash: 'ab'.repeat(32),
    sealedSecret: 'sealed',
    createdAt: at,
    revokedAt: null,
  };
}

function eventType(tenantId: string, name: string, version = 1): EventTypeRecord {
  return {
    tenantId,
    name,
    schema: { fields: { account_id: { type: 'string', required: true } } },
    version,
    updatedAt: at,
  };
}

function policyVersion(tenantId: string, version: number, reason = 'r'): PolicyVersionRecord {
  return {
    tenantId,
    eventType: 'login',
    version,
    policy: {
      strategy: 'worst',
      rules: [{ id: 'r1', name: 'rule', when: 'true', verdict: 'review', reason }],
    },
    createdAt: at,
    createdBy: 'admin',
  } as PolicyVersionRecord;
}

function policyState(tenantId: string, published: number | null): PolicyState {
  return { tenantId, eventType: 'login', published, history: [], canary: null, shadows: [], updatedAt: at };
}

function feature(tenantId: string, name: string, window = '1h'): FeatureRecord {
  return {
    tenantId,
    name,
    definition: { aggregation: 'count', by: ['ip'], window, event_types: ['login'] },
    version: 1,
    updatedAt: at,
  } as FeatureRecord;
}

/**
 * The contract every `ConfigStore` adapter must meet: what the port documents (each write durable
 * when it resolves, applied with its audit entry or not at all) and what the control plane relies
 * on (upserts by identity, a policy version written once, tenant deletion of everything of the
 * tenant, audit newest first with paging). `open` returns a fresh, empty store.
 */
export function configStoreContract(name: string, open: () => Promise<OpenedConfigStore>): void {
  describe(`${name} meets the ConfigStore contract`, () => {
    let opened: OpenedConfigStore;
    let store: ConfigStore;
    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => {
      await store.close();
    });

    it('starts empty', async () => {
      const snapshot = await store.load();
      expect(snapshot).toMatchObject({
        tenants: [],
        keys: [],
        eventTypes: [],
        policyVersions: [],
        policyStates: [],
      });
      expect(snapshot.features ?? []).toEqual([]);
      expect(await store.listAudit({ limit: 10 })).toEqual([]);
    });

    it('stores every kind of record, replacing by identity, and keeps it across a reopen', async () => {
      await store.putTenant(sampleTenant('t1'), sampleAudit('tenant.create', 't1'));
      await store.putTenant(sampleTenant('t1', { name: 'Renamed' }), sampleAudit('tenant.update', 't1'));
      await store.putKey(key('k1', 't1'), sampleAudit('key.create', 't1'));
      await store.putKey({ ...key('k1', 't1'), revokedAt: at }, sampleAudit('key.revoke', 't1'));
      await store.putEventType(eventType('t1', 'login'), sampleAudit('event_type.put', 't1'));
      await store.putEventType(eventType('t1', 'login', 2), sampleAudit('event_type.put', 't1'));
      await store.putPolicyVersion(policyVersion('t1', 1), sampleAudit('policy.version.create', 't1'));
      await store.putPolicyVersion(policyVersion('t1', 2), sampleAudit('policy.version.create', 't1'));
      await store.putPolicyState(policyState('t1', 1), sampleAudit('policy.publish', 't1'));
      await store.putPolicyState(policyState('t1', 2), sampleAudit('policy.publish', 't1'));
      await store.putFeature(feature('t1', 'logins'), sampleAudit('feature.put', 't1'));
      await store.putFeature(feature('t1', 'logins', '2h'), sampleAudit('feature.put', 't1'));
      await store.putFeature(feature('t1', 'gone'), sampleAudit('feature.put', 't1'));
      await store.deleteFeature('t1', 'gone', sampleAudit('feature.delete', 't1'));
      const expected = {
        tenants: [sampleTenant('t1', { name: 'Renamed' })],
        keys: [{ ...key('k1', 't1'), revokedAt: at }],
        eventTypes: [eventType('t1', 'login', 2)],
        policyVersions: [policyVersion('t1', 1), policyVersion('t1', 2)],
        policyStates: [policyState('t1', 2)],
        features: [feature('t1', 'logins', '2h')],
      };
      expect(await store.load()).toEqual(expected);
      await store.close();
      store = await opened.reopen();
      expect(await store.load()).toEqual(expected);
      expect(await store.listAudit({ limit: 100 })).toHaveLength(14);
    });

    it('writes a policy version once: a second write of its number fails and stores nothing', async () => {
      await store.putPolicyVersion(
        policyVersion('t1', 1, 'first'),
        sampleAudit('policy.version.create', 't1'),
      );
      await expect(
        store.putPolicyVersion(
          policyVersion('t1', 1, 'second'),
          sampleAudit('policy.version.create', 't1', { actor: 'late' }),
        ),
      ).rejects.toThrow();
      expect((await store.load()).policyVersions).toEqual([policyVersion('t1', 1, 'first')]);
      const audit = await store.listAudit({ limit: 10 });
      expect(audit.map((entry) => entry.actor)).toEqual(['admin']);
    });

    it('deletes a tenant with everything of it, and nothing of another tenant', async () => {
      for (const tenant of ['t1', 't2']) {
        await store.putTenant(sampleTenant(tenant), sampleAudit('tenant.create', tenant));
        await store.putKey(key(`k-${tenant}`, tenant), sampleAudit('key.create', tenant));
        await store.putEventType(eventType(tenant, 'login'), sampleAudit('event_type.put', tenant));
        await store.putPolicyVersion(policyVersion(tenant, 1), sampleAudit('policy.version.create', tenant));
        await store.putPolicyState(policyState(tenant, 1), sampleAudit('policy.publish', tenant));
        await store.putFeature(feature(tenant, 'logins'), sampleAudit('feature.put', tenant));
      }
      await store.deleteTenant('t1', sampleAudit('tenant.delete', 't1'));
      const snapshot = await store.load();
      expect(snapshot.tenants.map((tenant) => tenant.id)).toEqual(['t2']);
      for (const records of [
        snapshot.keys,
        snapshot.eventTypes,
        snapshot.policyVersions,
        snapshot.policyStates,
        snapshot.features ?? [],
      ]) {
        expect(records.map((record) => record.tenantId)).toEqual(['t2']);
      }
      expect((await store.listAudit({ limit: 1 }))[0]?.action).toBe('tenant.delete');
    });

    it('keeps the audit trail newest first, per tenant, in pages, with audit-only entries', async () => {
      await store.putTenant(sampleTenant('t1'), sampleAudit('tenant.create', 't1'));
      await store.putTenant(sampleTenant('t2'), sampleAudit('tenant.create', 't2'));
      await store.appendAudit(
        sampleAudit('list.entries.add', 't1', {
          actor: 'key:k_1',
          target: 'blocked_ips',
          diff: { before: null, after: { added: 2 } },
        }),
      );
      await store.appendAudit(sampleAudit('platform.fault', null));
      const all = await store.listAudit({ limit: 10 });
      expect(all.map((entry) => entry.action)).toEqual([
        'platform.fault',
        'list.entries.add',
        'tenant.create',
        'tenant.create',
      ]);
      expect(all[1]).toMatchObject({
        at,
        actor: 'key:k_1',
        tenantId: 't1',
        target: 'blocked_ips',
        diff: { before: null, after: { added: 2 } },
      });
      expect(all[0]?.tenantId).toBeNull();
      const ids = all.map((entry) => entry.id as number);
      expect(ids.every((id) => typeof id === 'number')).toBe(true);
      expect([...ids].sort((a, b) => b - a)).toEqual(ids);
      const mine = await store.listAudit({ tenantId: 't1', limit: 10 });
      expect(mine.map((entry) => entry.action)).toEqual(['list.entries.add', 'tenant.create']);
      const first = await store.listAudit({ limit: 2 });
      const second = await store.listAudit({ limit: 2, before: first[1]?.id as number });
      expect([...first, ...second].map((entry) => entry.id)).toEqual(ids);
    });
  });
}
