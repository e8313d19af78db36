import { compileEventValidator, type EventValidator, entityFieldTypes } from '../events/event-validator.js';
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

interface TenantEntry {
  record: TenantRecord;
  eventTypes: Map<string, EventTypeDefinition>;
}

/**
 * The configuration the hot path reads: everything in memory, replaced entry by entry as the
 * control plane changes it. Lookups are plain map reads.
 */
export class ConfigRegistry {
  readonly #tenants = new Map<string, TenantEntry>();
  readonly #keys = new Map<string, ApiKeyRecord>();

  static from(snapshot: ConfigSnapshot): ConfigRegistry {
    const registry = new ConfigRegistry();
    for (const tenant of snapshot.tenants) registry.putTenant(tenant);
    for (const key of snapshot.keys) registry.putKey(key);
    for (const eventType of snapshot.eventTypes) registry.putEventType(eventType);
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
    else this.#tenants.set(record.id, { record, eventTypes: new Map() });
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
  }
}
