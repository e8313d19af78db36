import { randomBytes } from 'node:crypto';
import type {
  ApiKeyRecord,
  AuditEntry,
  ConfigRegistry,
  ConfigStore,
  DecisionLog,
  EventTypeRecord,
  TenantRecord,
} from '@vigil/engine';
import {
  type EventTypeSchema,
  type KeyInput,
  type TenantInput,
  type TenantPatch,
  VigilError,
} from '@vigil/protocol';
import { randomToken, type SecretBox, sha256 } from './secrets.js';

/** What a new key's creator is shown, once. */
export interface IssuedKey {
  key_id: string;
  secret: string;
  api_key: string;
  scopes: ApiKeyRecord['scopes'];
}

export function tenantView(tenant: TenantRecord) {
  return {
    id: tenant.id,
    name: tenant.name,
    rate_limit: tenant.rateLimit,
    max_concurrency: tenant.maxConcurrency,
    created_at: tenant.createdAt,
    updated_at: tenant.updatedAt,
  };
}

export function keyView(key: ApiKeyRecord) {
  return {
    key_id: key.id,
    scopes: key.scopes,
    description: key.description,
    created_at: key.createdAt,
    revoked_at: key.revokedAt,
  };
}

export function eventTypeView(eventType: EventTypeRecord) {
  return {
    type: eventType.name,
    version: eventType.version,
    updated_at: eventType.updatedAt,
    ...eventType.schema,
  };
}

const id = (prefix: string) => `${prefix}_${randomBytes(9).toString('base64url').replaceAll(/[-_]/g, 'x')}`;

/**
 * Changes configuration: writes to the durable store with an audit entry, then updates the
 * in-memory registry the hot path reads, so a change is served as soon as its call returns.
 */
export class ControlPlane {
  constructor(
    private readonly store: ConfigStore,
    private readonly registry: ConfigRegistry,
    private readonly log: DecisionLog,
    private readonly secrets: SecretBox,
    private readonly onKeyChange: (keyId: string) => void = () => {},
  ) {}

  tenant(tenantId: string): TenantRecord {
    const tenant = this.registry.tenant(tenantId);
    if (tenant === undefined) throw new VigilError('not_found', { message: `No tenant '${tenantId}'.` });
    return tenant;
  }

  keys(tenantId: string): ApiKeyRecord[] {
    return this.registry.keysOf(tenantId);
  }

  eventTypes(tenantId: string): EventTypeRecord[] {
    return this.registry.eventTypesOf(tenantId).map((definition) => definition.record);
  }

  eventType(tenantId: string, name: string): EventTypeRecord {
    const definition = this.registry.eventType(tenantId, name);
    if (definition === undefined) throw new VigilError('not_found', { message: `No event type '${name}'.` });
    return definition.record;
  }

  async createTenant(actor: string, input: TenantInput): Promise<TenantRecord> {
    const now = new Date().toISOString();
    const tenant: TenantRecord = {
      id: id('t'),
      name: input.name,
      rateLimit: input.rate_limit ?? null,
      maxConcurrency: input.max_concurrency ?? null,
      createdAt: now,
      updatedAt: now,
    };
    await this.store.putTenant(tenant, audit(actor, tenant.id, 'tenant.create', tenant.id, null, tenant));
    this.registry.putTenant(tenant);
    return tenant;
  }

  async updateTenant(actor: string, tenantId: string, patch: TenantPatch): Promise<TenantRecord> {
    const before = this.tenant(tenantId);
    const after: TenantRecord = { ...before, updatedAt: new Date().toISOString() };
    if (patch.name !== undefined) after.name = patch.name;
    if (patch.rate_limit !== undefined) after.rateLimit = patch.rate_limit;
    if (patch.max_concurrency !== undefined) after.maxConcurrency = patch.max_concurrency;
    await this.store.putTenant(after, audit(actor, tenantId, 'tenant.update', tenantId, before, after));
    this.registry.putTenant(after);
    return after;
  }

  async deleteTenant(actor: string, tenantId: string): Promise<void> {
    const before = this.tenant(tenantId);
    await this.store.deleteTenant(tenantId, audit(actor, tenantId, 'tenant.delete', tenantId, before, null));
    for (const key of this.registry.keysOf(tenantId)) this.onKeyChange(key.id);
    this.registry.deleteTenant(tenantId);
    await this.log.deleteTenant(tenantId);
  }

  async createKey(actor: string, tenantId: string, input: KeyInput): Promise<IssuedKey> {
    this.tenant(tenantId);
    const secret = randomToken(32);
    const key: ApiKeyRecord = {
      id: id('k'),
      tenantId,
      scopes: input.scopes,
      description: input.description ?? null,
      secretHash: sha256(secret),
      sealedSecret: this.secrets.seal(secret),
      createdAt: new Date().toISOString(),
      revokedAt: null,
    };
    await this.store.putKey(key, audit(actor, tenantId, 'key.create', key.id, null, keyView(key)));
    this.registry.putKey(key);
    return { key_id: key.id, secret, api_key: `${key.id}.${secret}`, scopes: key.scopes };
  }

  async revokeKey(actor: string, tenantId: string, keyId: string): Promise<void> {
    const key = this.registry.key(keyId);
    if (key === undefined || key.tenantId !== tenantId)
      throw new VigilError('not_found', { message: `No key '${keyId}'.` });
    if (key.revokedAt !== null) return;
    const revoked: ApiKeyRecord = { ...key, revokedAt: new Date().toISOString() };
    await this.store.putKey(
      revoked,
      audit(actor, tenantId, 'key.revoke', keyId, keyView(key), keyView(revoked)),
    );
    this.registry.putKey(revoked);
    this.onKeyChange(keyId);
  }

  async putEventType(
    actor: string,
    tenantId: string,
    name: string,
    schema: EventTypeSchema,
  ): Promise<{ record: EventTypeRecord; created: boolean }> {
    this.tenant(tenantId);
    const enumWithoutValues = Object.entries(schema.fields)
      .filter(([, spec]) => spec.type === 'enum' && spec.values === undefined)
      .map(([field]) => ({ path: `fields.${field}.values`, message: 'is required for an enum field' }));
    if (enumWithoutValues.length > 0) throw new VigilError('invalid_config', { details: enumWithoutValues });
    const before = this.registry.eventType(tenantId, name)?.record;
    const record: EventTypeRecord = {
      tenantId,
      name,
      schema,
      version: (before?.version ?? 0) + 1,
      updatedAt: new Date().toISOString(),
    };
    await this.store.putEventType(
      record,
      audit(
        actor,
        tenantId,
        before === undefined ? 'event_type.create' : 'event_type.update',
        name,
        before?.schema ?? null,
        schema,
      ),
    );
    this.registry.putEventType(record);
    return { record, created: before === undefined };
  }
}

function audit(
  actor: string,
  tenantId: string | null,
  action: string,
  target: string,
  before: unknown,
  after: unknown,
): AuditEntry {
  return { at: new Date().toISOString(), actor, tenantId, action, target, diff: { before, after } };
}
