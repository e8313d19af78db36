import type { EventTypeSchema, Scope, Verdict } from '@vigil/protocol';
import type { FeatureRecord } from '../features/feature-definition.js';
import type { PolicyState, PolicyVersionRecord } from '../policy/policy-model.js';

export interface TenantRecord {
  id: string;
  name: string;
  rateLimit: { rps: number; burst: number } | null;
  maxConcurrency: number | null;
  /** Fail-open answer for decision requests shed under overload; absent in records older than it. */
  overloadFallback?: { verdict: Verdict } | null;
  createdAt: string;
  updatedAt: string;
}

export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  scopes: Scope[];
  description: string | null;
  /** SHA-256 of the secret, hex. The secret itself is never stored in the clear. */
  secretHash: string;
  /** The secret sealed with the node's master key, needed to verify HMAC signatures. */
  sealedSecret: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface EventTypeRecord {
  tenantId: string;
  name: string;
  schema: EventTypeSchema;
  version: number;
  updatedAt: string;
}

export interface AuditEntry {
  id?: number;
  at: string;
  /** `admin` or `key:<key_id>`. */
  actor: string;
  /** Tenant the change belongs to, when it belongs to one. */
  tenantId: string | null;
  action: string;
  target: string;
  /** What changed: `{ before, after }`, secrets left out. */
  diff: { before: unknown; after: unknown };
}

export interface ConfigSnapshot {
  tenants: TenantRecord[];
  keys: ApiKeyRecord[];
  eventTypes: EventTypeRecord[];
  policyVersions: PolicyVersionRecord[];
  policyStates: PolicyState[];
  /** Feature definitions; absent in snapshots written before features existed. */
  features?: FeatureRecord[];
}

/**
 * Durable configuration: tenants, keys, event types, and the audit trail of their changes.
 *
 * Contract: every write is durable when its promise resolves, and is applied together with its
 * audit entry or not at all. The hot path never calls this port; it reads an in-memory snapshot.
 */
export interface ConfigStore {
  load(): Promise<ConfigSnapshot>;
  putTenant(tenant: TenantRecord, audit: AuditEntry): Promise<void>;
  deleteTenant(tenantId: string, audit: AuditEntry): Promise<void>;
  putKey(key: ApiKeyRecord, audit: AuditEntry): Promise<void>;
  putEventType(eventType: EventTypeRecord, audit: AuditEntry): Promise<void>;
  putPolicyVersion(version: PolicyVersionRecord, audit: AuditEntry): Promise<void>;
  putPolicyState(state: PolicyState, audit: AuditEntry): Promise<void>;
  putFeature(feature: FeatureRecord, audit: AuditEntry): Promise<void>;
  deleteFeature(tenantId: string, name: string, audit: AuditEntry): Promise<void>;
  /** Records a change made in another store (lists), after that store's write. */
  appendAudit(audit: AuditEntry): Promise<void>;
  listAudit(query: { tenantId?: string; limit: number; before?: number }): Promise<AuditEntry[]>;
  close(): Promise<void>;
}
