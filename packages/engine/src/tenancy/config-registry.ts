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

/** What {@link ConfigRegistry.applySnapshot} changed, for the caches and services beside it. */
export interface ConfigChanges {
  /** Tenants added or whose record changed (quotas, name, fallback). */
  tenants: string[];
  /** Tenants removed, with their keys, event types, policies and features. */
  deletedTenants: string[];
  /** Keys added, changed (a revocation) or removed: a cached credential of each must be forgotten. */
  keys: string[];
  /** Event types added, changed or removed (of tenants not deleted). */
  eventTypes: { tenantId: string; eventType: string }[];
  /** Features added, changed or removed: `before` is the record replaced, `after` the new one. */
  features: { before: FeatureRecord | undefined; after: FeatureRecord | undefined }[];
  /** Policies with a version or their state added, changed or removed (of tenants not deleted). */
  policies: { tenantId: string; eventType: string }[];
  /** Policies whose serving set was compiled again. */
  recompiled: { tenantId: string; eventType: string }[];
  /** Serving sets that did not compile; the previous one keeps serving. */
  failures: { tenantId: string; eventType: string; error: unknown }[];
}

/** Records are plain JSON data; equal serialisations are the same configuration. */
function sameRecord(a: unknown, b: unknown): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

/** A snapshot's records of one tenant. */
interface TenantSnapshot {
  eventTypes: EventTypeRecord[];
  features: FeatureRecord[];
  policyVersions: PolicyVersionRecord[];
  policyStates: PolicyState[];
}

function byTenant(snapshot: ConfigSnapshot): Map<string, TenantSnapshot> {
  const tenants = new Map<string, TenantSnapshot>();
  const of = (tenantId: string) => {
    let entry = tenants.get(tenantId);
    if (entry === undefined) {
      entry = { eventTypes: [], features: [], policyVersions: [], policyStates: [] };
      tenants.set(tenantId, entry);
    }
    return entry;
  };
  for (const record of snapshot.eventTypes) of(record.tenantId).eventTypes.push(record);
  for (const record of snapshot.features ?? []) of(record.tenantId).features.push(record);
  for (const record of snapshot.policyVersions) of(record.tenantId).policyVersions.push(record);
  for (const record of snapshot.policyStates) of(record.tenantId).policyStates.push(record);
  return tenants;
}

/** The versions a state makes serve. */
function servingVersions(state: PolicyState | null): number[] {
  if (state === null) return [];
  const versions = [...state.shadows];
  if (state.published !== null) versions.push(state.published);
  if (state.canary !== null) versions.push(state.canary.version);
  return versions;
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

  /**
   * Makes the registry hold exactly `snapshot` (a configuration another node changed), touching
   * only what differs: an unchanged record keeps its entry, and a policy is compiled again only
   * when its state, a version it serves, its event type or its tenant's features changed. A policy
   * whose new serving set does not compile keeps serving the previous one and is reported.
   */
  applySnapshot(snapshot: ConfigSnapshot): ConfigChanges {
    const changes: ConfigChanges = {
      tenants: [],
      deletedTenants: [],
      keys: [],
      eventTypes: [],
      features: [],
      policies: [],
      recompiled: [],
      failures: [],
    };
    const wanted = new Set(snapshot.tenants.map((tenant) => tenant.id));
    for (const [tenantId, entry] of [...this.#tenants]) {
      if (wanted.has(tenantId)) continue;
      for (const feature of entry.features.values())
        changes.features.push({ before: feature, after: undefined });
      for (const key of this.keysOf(tenantId)) changes.keys.push(key.id);
      this.deleteTenant(tenantId);
      changes.deletedTenants.push(tenantId);
    }
    for (const tenant of snapshot.tenants) {
      if (sameRecord(this.#tenants.get(tenant.id)?.record, tenant)) continue;
      this.putTenant(tenant);
      changes.tenants.push(tenant.id);
    }
    const keyIds = new Set(snapshot.keys.map((key) => key.id));
    for (const keyId of [...this.#keys.keys()]) {
      if (keyIds.has(keyId)) continue;
      this.#keys.delete(keyId);
      changes.keys.push(keyId);
    }
    for (const key of snapshot.keys) {
      if (sameRecord(this.#keys.get(key.id), key)) continue;
      this.putKey(key);
      changes.keys.push(key.id);
    }
    const records = byTenant(snapshot);
    for (const [tenantId, tenant] of this.#tenants) {
      this.#applyTenant(tenantId, tenant, records.get(tenantId), changes);
    }
    return changes;
  }

  #applyTenant(
    tenantId: string,
    tenant: TenantEntry,
    records: TenantSnapshot | undefined,
    changes: ConfigChanges,
  ): void {
    /** Event types whose serving set must be compiled again. */
    const stale = new Set<string>();
    /** Per event type, the versions whose record changed. */
    const changedVersions = new Map<string, Set<number>>();
    const eventTypes = new Map((records?.eventTypes ?? []).map((record) => [record.name, record]));
    for (const name of [...tenant.eventTypes.keys()]) {
      if (eventTypes.has(name)) continue;
      tenant.eventTypes.delete(name);
      stale.add(name);
      changes.eventTypes.push({ tenantId, eventType: name });
    }
    for (const [name, record] of eventTypes) {
      if (sameRecord(tenant.eventTypes.get(name)?.record, record)) continue;
      tenant.eventTypes.set(name, defineEventType(record));
      stale.add(name);
      changes.eventTypes.push({ tenantId, eventType: name });
    }
    let featuresChanged = false;
    const features = new Map((records?.features ?? []).map((record) => [record.name, record]));
    for (const [name, before] of [...tenant.features]) {
      if (features.has(name)) continue;
      tenant.features.delete(name);
      changes.features.push({ before, after: undefined });
      featuresChanged = true;
    }
    for (const [name, record] of features) {
      const before = tenant.features.get(name);
      if (sameRecord(before, record)) continue;
      tenant.features.set(name, record);
      changes.features.push({ before, after: record });
      featuresChanged = true;
    }
    const versions = new Map<string, Map<number, PolicyVersionRecord>>();
    for (const record of records?.policyVersions ?? []) {
      let ofType = versions.get(record.eventType);
      if (ofType === undefined) {
        ofType = new Map();
        versions.set(record.eventType, ofType);
      }
      ofType.set(record.version, record);
    }
    const states = new Map((records?.policyStates ?? []).map((state) => [state.eventType, state]));
    for (const eventType of new Set([...tenant.policies.keys(), ...versions.keys(), ...states.keys()])) {
      const entry = this.#policyEntry(tenantId, eventType, true) as PolicyEntry;
      const wantedVersions = versions.get(eventType) ?? new Map<number, PolicyVersionRecord>();
      const changed = new Set<number>();
      for (const version of [...entry.versions.keys()]) {
        if (wantedVersions.has(version)) continue;
        entry.versions.delete(version);
        changed.add(version);
      }
      for (const [version, record] of wantedVersions) {
        if (sameRecord(entry.versions.get(version), record)) continue;
        entry.versions.set(version, record);
        changed.add(version);
      }
      changedVersions.set(eventType, changed);
      const state = states.get(eventType) ?? null;
      const stateChanged = entry.state === null ? state !== null : !sameRecord(entry.state, state);
      if (stateChanged) stale.add(eventType);
      if (stateChanged || changed.size > 0) changes.policies.push({ tenantId, eventType });
    }
    if (featuresChanged || stale.size > 0) tenant.featurePrograms.clear();
    for (const [eventType, entry] of tenant.policies) {
      const state = states.get(eventType) ?? null;
      const servesChanged = servingVersions(state).some((version) =>
        changedVersions.get(eventType)?.has(version),
      );
      if (!featuresChanged && !stale.has(eventType) && !servesChanged) continue;
      if (state === null) {
        entry.state = null;
        entry.serving = undefined;
        continue;
      }
      try {
        this.putPolicyState(state);
        changes.recompiled.push({ tenantId, eventType });
      } catch (error) {
        changes.failures.push({ tenantId, eventType, error });
      }
    }
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
      featureTypes(features ?? this.features(eventType.tenantId), eventType),
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
function featureTypes(
  features: readonly FeatureRecord[],
  eventType: EventTypeRecord,
): RuleEnvironment['features'] {
  const types: RuleEnvironment['features'] = {};
  for (const feature of features) {
    if (feature.definition.event_types.includes(eventType.name))
      types[feature.name] = featureValueType(feature.definition, (name) =>
        name === eventType.name ? eventType : undefined,
      );
  }
  return types;
}
