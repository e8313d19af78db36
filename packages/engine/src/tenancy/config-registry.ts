import { compileEventValidator, type EventValidator, entityFieldTypes } from '../events/event-validator.js';
import type { PolicyState, PolicyVersionRecord, RuleCompiler } from '../policy/policy-model.js';
import { environmentOf, type ServingPolicies, servingPolicies } from '../policy/serving-policies.js';
import type { ApiKeyRecord, ConfigSnapshot, EventTypeRecord, TenantRecord } from '../ports/config-store.js';

/** An event type ready for the hot path: its record plus what was compiled from it. */
export interface EventTypeDefinition {
  record: EventTypeRecord;
  validate: EventValidator;
  /** Names of fields whose values are entities (searchable in the decision log). */
  entityFields: string[];
}

export function defineEventType(record: EventTypeRecord): EventTypeDefinition {
  const entityFields = Object.entries(record.schema.fields)
    .filter(([, spec]) => entityFieldTypes.has(spec.type))
    .map(([name]) => name);
  return { record, validate: compileEventValidator(record.schema), entityFields };
}

interface PolicyEntry {
  versions: Map<number, PolicyVersionRecord>;
  state: PolicyState | null;
  serving: ServingPolicies | undefined;
}

interface TenantEntry {
  record: TenantRecord;
  eventTypes: Map<string, EventTypeDefinition>;
  policies: Map<string, PolicyEntry>;
}

/**
 * The configuration the hot path reads: everything in memory, replaced entry by entry as the
 * control plane changes it. Lookups are plain map reads.
 */
export class ConfigRegistry {
  readonly #tenants = new Map<string, TenantEntry>();
  readonly #keys = new Map<string, ApiKeyRecord>();

  /** Without a compiler, policies are stored but none serves (for tools and tests). */
  constructor(readonly compiler?: RuleCompiler) {}

  static from(snapshot: ConfigSnapshot, compiler?: RuleCompiler): ConfigRegistry {
    const registry = new ConfigRegistry(compiler);
    for (const tenant of snapshot.tenants) registry.putTenant(tenant);
    for (const key of snapshot.keys) registry.putKey(key);
    for (const eventType of snapshot.eventTypes) registry.putEventType(eventType);
    for (const version of snapshot.policyVersions) registry.putPolicyVersion(version);
    for (const state of snapshot.policyStates) registry.putPolicyState(state);
    return registry;
  }

  tenant(tenantId: string): TenantRecord | undefined {
    return this.#tenants.get(tenantId)?.record;
  }

  tenants(): TenantRecord[] {
    return [...this.#tenants.values()].map((entry) => entry.record);
  }

  /** A key that exists and is not revoked, whose tenant exists. */
  activeKey(keyId: string): ApiKeyRecord | undefined {
    const key = this.#keys.get(keyId);
    if (key === undefined || key.revokedAt !== null || !this.#tenants.has(key.tenantId)) return undefined;
    return key;
  }

  key(keyId: string): ApiKeyRecord | undefined {
    return this.#keys.get(keyId);
  }

  keysOf(tenantId: string): ApiKeyRecord[] {
    return [...this.#keys.values()].filter((key) => key.tenantId === tenantId);
  }

  eventType(tenantId: string, name: string): EventTypeDefinition | undefined {
    return this.#tenants.get(tenantId)?.eventTypes.get(name);
  }

  eventTypesOf(tenantId: string): EventTypeDefinition[] {
    return [...(this.#tenants.get(tenantId)?.eventTypes.values() ?? [])];
  }

  putTenant(record: TenantRecord): void {
    const existing = this.#tenants.get(record.id);
    if (existing !== undefined) existing.record = record;
    else this.#tenants.set(record.id, { record, eventTypes: new Map(), policies: new Map() });
  }

  deleteTenant(tenantId: string): void {
    this.#tenants.delete(tenantId);
    for (const [keyId, key] of this.#keys) if (key.tenantId === tenantId) this.#keys.delete(keyId);
  }

  putKey(record: ApiKeyRecord): void {
    this.#keys.set(record.id, record);
  }

  putEventType(record: EventTypeRecord): void {
    this.#tenants.get(record.tenantId)?.eventTypes.set(record.name, defineEventType(record));
    const policies = this.#policyEntry(record.tenantId, record.name);
    if (policies?.state != null) this.putPolicyState(policies.state);
  }

  policyVersions(tenantId: string, eventType: string): PolicyVersionRecord[] {
    return [...(this.#policyEntry(tenantId, eventType)?.versions.values() ?? [])];
  }

  policyVersion(tenantId: string, eventType: string, version: number): PolicyVersionRecord | undefined {
    return this.#policyEntry(tenantId, eventType)?.versions.get(version);
  }

  policyState(tenantId: string, eventType: string): PolicyState | null {
    return this.#policyEntry(tenantId, eventType)?.state ?? null;
  }

  /** The compiled versions serving an event type; undefined before its first publish. */
  serving(tenantId: string, eventType: string): ServingPolicies | undefined {
    return this.#tenants.get(tenantId)?.policies.get(eventType)?.serving;
  }

  putPolicyVersion(record: PolicyVersionRecord): void {
    this.#policyEntry(record.tenantId, record.eventType, true)?.versions.set(record.version, record);
  }

  /**
   * Makes a state serve. Its versions are compiled first; when they do not compile (the control
   * plane prevents that) the previous serving set stays and the error is thrown.
   */
  putPolicyState(state: PolicyState): void {
    const entry = this.#policyEntry(state.tenantId, state.eventType, true);
    const eventType = this.eventType(state.tenantId, state.eventType);
    if (entry === undefined) return;
    entry.serving =
      this.compiler === undefined || eventType === undefined
        ? undefined
        : servingPolicies(this.compiler, state, entry.versions, environmentOf(eventType.record));
    entry.state = state;
  }

  #policyEntry(tenantId: string, eventType: string, create = false): PolicyEntry | undefined {
    const tenant = this.#tenants.get(tenantId);
    if (tenant === undefined) return undefined;
    let entry = tenant.policies.get(eventType);
    if (entry === undefined && create) {
      entry = { versions: new Map(), state: null, serving: undefined };
      tenant.policies.set(eventType, entry);
    }
    return entry;
  }
}
