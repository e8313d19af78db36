import { compileEventValidator, type EventValidator, entityFieldTypes } from '../events/event-validator.js';
import {
  type FeatureProgram,
  type FeatureRecord,
  featureProgram,
  featureValueType,
} from '../features/feature-definition.js';
import type {
  PolicyState,
  PolicyVersionRecord,
  RuleCompiler,
  RuleEnvironment,
} from '../policy/policy-model.js';
import { environmentOf, type ServingPolicies, servingPolicies } from '../policy/serving-policies.js';
import type { ApiKeyRecord, ConfigSnapshot, EventTypeRecord, TenantRecord } from '../ports/config-store.js';
import type { LocalListIndex } from '../ports/list-store.js';

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
  features: Map<string, FeatureRecord>;
  /** Compiled features by event type, built on first use after a change. */
  featurePrograms: Map<string, readonly FeatureProgram[]>;
}

/**
 * The configuration the hot path reads: everything in memory, replaced entry by entry as the
 * control plane changes it. Lookups are plain map reads.
 */
export class ConfigRegistry {
  readonly #tenants = new Map<string, TenantEntry>();
  readonly #keys = new Map<string, ApiKeyRecord>();

  /**
   * Without a compiler, policies are stored but none serves (for tools and tests). `lists` are the
   * tenants' lists: their names for the rule checker (`in_list`); without it a tenant has none.
   */
  constructor(
    readonly compiler?: RuleCompiler,
    readonly lists?: LocalListIndex,
  ) {}

  static from(snapshot: ConfigSnapshot, compiler?: RuleCompiler, lists?: LocalListIndex): ConfigRegistry {
    const registry = new ConfigRegistry(compiler, lists);
    for (const tenant of snapshot.tenants) registry.putTenant(tenant);
    for (const key of snapshot.keys) registry.putKey(key);
    for (const eventType of snapshot.eventTypes) registry.putEventType(eventType);
    for (const version of snapshot.policyVersions) registry.putPolicyVersion(version);
    for (const feature of snapshot.features ?? []) registry.putFeature(feature);
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
    else
      this.#tenants.set(record.id, {
        record,
        eventTypes: new Map(),
        policies: new Map(),
        features: new Map(),
        featurePrograms: new Map(),
      });
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
    this.#tenants.get(record.tenantId)?.featurePrograms.clear();
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

  /** What the rules of an event type can refer to, with the tenant's current lists. */
  environment(eventType: EventTypeRecord, features?: readonly FeatureRecord[]): RuleEnvironment {
    return environmentOf(
      eventType,
      this.lists?.names(eventType.tenantId) ?? [],
      featureTypes(features ?? this.features(eventType.tenantId), eventType.name),
    );
  }

  features(tenantId: string): FeatureRecord[] {
    return [...(this.#tenants.get(tenantId)?.features.values() ?? [])];
  }

  feature(tenantId: string, name: string): FeatureRecord | undefined {
    return this.#tenants.get(tenantId)?.features.get(name);
  }

  /** The features an event of this type updates and rules of it read, compiled once per change. */
  featurePrograms(tenantId: string, eventType: string): readonly FeatureProgram[] {
    const tenant = this.#tenants.get(tenantId);
    if (tenant === undefined || tenant.features.size === 0) return noPrograms;
    let programs = tenant.featurePrograms.get(eventType);
    if (programs === undefined) {
      const definition = tenant.eventTypes.get(eventType);
      programs =
        definition === undefined
          ? noPrograms
          : [...tenant.features.values()]
              .filter((feature) => feature.definition.event_types.includes(eventType))
              .map((feature) => featureProgram(feature, definition.record))
              .filter((program) => program !== undefined);
      tenant.featurePrograms.set(eventType, programs);
    }
    return programs;
  }

  /** Adds or replaces a feature; serving policies are recompiled with the new feature types. */
  putFeature(record: FeatureRecord): void {
    const tenant = this.#tenants.get(record.tenantId);
    if (tenant === undefined) return;
    tenant.features.set(record.name, record);
    this.#featuresChanged(record.tenantId);
  }

  deleteFeature(tenantId: string, name: string): void {
    const tenant = this.#tenants.get(tenantId);
    if (tenant?.features.delete(name) === true) this.#featuresChanged(tenantId);
  }

  #featuresChanged(tenantId: string): void {
    const tenant = this.#tenants.get(tenantId);
    if (tenant === undefined) return;
    tenant.featurePrograms.clear();
    for (const entry of tenant.policies.values()) if (entry.state !== null) this.putPolicyState(entry.state);
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
        : servingPolicies(this.compiler, state, entry.versions, this.environment(eventType.record));
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

const noPrograms: readonly FeatureProgram[] = [];

/** The value types of the features rules of an event type can read: those that listen to it. */
function featureTypes(features: readonly FeatureRecord[], eventType: string): RuleEnvironment['features'] {
  const types: RuleEnvironment['features'] = {};
  for (const feature of features) {
    if (feature.definition.event_types.includes(eventType))
      types[feature.name] = featureValueType(feature.definition.aggregation);
  }
  return types;
}
