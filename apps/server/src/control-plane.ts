import { randomBytes } from 'node:crypto';
import {
  type ApiKeyRecord,
  type ConfigRegistry,
  type ConfigStore,
  compilePolicy,
  DecisionLists,
  type DecisionLog,
  type EventTypeRecord,
  evaluatePolicy,
  PolicyCompileFailure,
  type PolicyState,
  type PolicyVersionRecord,
  type RuleCompiler,
  type TenantRecord,
} from '@vigil/engine';
import {
  type EventInput,
  type EventTypeSchema,
  type KeyInput,
  type PolicyInput,
  type TenantInput,
  type TenantPatch,
  VigilError,
} from '@vigil/protocol';
import { auditEntry } from './audit.js';
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
    overload_fallback: tenant.overloadFallback ?? null,
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
    private readonly compiler: RuleCompiler,
    private readonly onKeyChange: (keyId: string) => void = () => {},
    /** Removes what other stores (lists) hold for a deleted tenant. */
    private readonly onTenantDelete: (tenantId: string) => Promise<void> = async () => {},
    /** The CPU budget of one policy evaluation (`VIGIL_POLICY_CPU_BUDGET_MS`), also for `test`. */
    private readonly policyCpuBudgetMs?: number,
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
      overloadFallback: input.overload_fallback ?? null,
      createdAt: now,
      updatedAt: now,
    };
    await this.store.putTenant(
      tenant,
      auditEntry(actor, tenant.id, 'tenant.create', tenant.id, null, tenant),
    );
    this.registry.putTenant(tenant);
    return tenant;
  }

  async updateTenant(actor: string, tenantId: string, patch: TenantPatch): Promise<TenantRecord> {
    const before = this.tenant(tenantId);
    const after: TenantRecord = { ...before, updatedAt: new Date().toISOString() };
    if (patch.name !== undefined) after.name = patch.name;
    if (patch.rate_limit !== undefined) after.rateLimit = patch.rate_limit;
    if (patch.max_concurrency !== undefined) after.maxConcurrency = patch.max_concurrency;
    if (patch.overload_fallback !== undefined) after.overloadFallback = patch.overload_fallback;
    await this.store.putTenant(after, auditEntry(actor, tenantId, 'tenant.update', tenantId, before, after));
    this.registry.putTenant(after);
    return after;
  }

  async deleteTenant(actor: string, tenantId: string): Promise<void> {
    const before = this.tenant(tenantId);
    await this.store.deleteTenant(
      tenantId,
      auditEntry(actor, tenantId, 'tenant.delete', tenantId, before, null),
    );
    for (const key of this.registry.keysOf(tenantId)) this.onKeyChange(key.id);
    this.registry.deleteTenant(tenantId);
    await this.log.deleteTenant(tenantId);
    await this.onTenantDelete(tenantId);
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
    await this.store.putKey(key, auditEntry(actor, tenantId, 'key.create', key.id, null, keyView(key)));
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
      auditEntry(actor, tenantId, 'key.revoke', keyId, keyView(key), keyView(revoked)),
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
    const candidate: EventTypeRecord = {
      tenantId,
      name,
      schema,
      version: (before?.version ?? 0) + 1,
      updatedAt: new Date().toISOString(),
    };
    this.#checkServingStillCompiles(candidate);
    const record: EventTypeRecord = {
      tenantId,
      name,
      schema,
      version: (before?.version ?? 0) + 1,
      updatedAt: new Date().toISOString(),
    };
    await this.store.putEventType(
      record,
      auditEntry(
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

  /** A published or canary or shadow policy must keep compiling against a changed event type. */
  #checkServingStillCompiles(eventType: EventTypeRecord): void {
    const state = this.registry.policyState(eventType.tenantId, eventType.name);
    if (state === null) return;
    const serving = [state.published, state.canary?.version, ...state.shadows].filter(
      (v) => typeof v === 'number',
    );
    for (const version of serving) {
      const record = this.registry.policyVersion(eventType.tenantId, eventType.name, version);
      if (record === undefined) continue;
      try {
        compilePolicy(this.compiler, record, this.registry.environment(eventType));
      } catch (error) {
        if (!(error instanceof PolicyCompileFailure)) throw error;
        throw new VigilError('invalid_config', {
          message: `This change would break policy version ${version} of '${eventType.name}', which is serving.`,
          details: compileDetails(error),
        });
      }
    }
  }

  #eventTypeFor(tenantId: string, eventType: string) {
    this.tenant(tenantId);
    const definition = this.registry.eventType(tenantId, eventType);
    if (definition === undefined)
      throw new VigilError('not_found', { message: `No event type '${eventType}'.` });
    return definition;
  }

  /** Compiles without saving; throws `invalid_policy` with every error. */
  compileDraft(tenantId: string, eventType: string, policy: PolicyInput, version = 0) {
    const definition = this.#eventTypeFor(tenantId, eventType);
    const duplicate = policy.rules.map((rule) => rule.id).find((id, index, ids) => ids.indexOf(id) !== index);
    if (duplicate !== undefined) {
      throw new VigilError('invalid_policy', {
        details: [
          { path: `rules.${duplicate}.id`, message: 'is used by more than one rule', rule: duplicate },
        ],
      });
    }
    const record: PolicyVersionRecord = {
      tenantId,
      eventType,
      version,
      policy,
      createdAt: '',
      createdBy: '',
    };
    try {
      return {
        definition,
        compiled: compilePolicy(this.compiler, record, this.registry.environment(definition.record)),
      };
    } catch (error) {
      if (!(error instanceof PolicyCompileFailure)) throw error;
      throw new VigilError('invalid_policy', { details: compileDetails(error) });
    }
  }

  async createPolicyVersion(actor: string, tenantId: string, eventType: string, policy: PolicyInput) {
    const versions = this.registry.policyVersions(tenantId, eventType);
    const version = versions.reduce((max, record) => Math.max(max, record.version), 0) + 1;
    this.compileDraft(tenantId, eventType, policy, version);
    const record: PolicyVersionRecord = {
      tenantId,
      eventType,
      version,
      policy,
      createdAt: new Date().toISOString(),
      createdBy: actor,
    };
    const previous = versions.at(-1)?.policy ?? null;
    await this.store.putPolicyVersion(
      record,
      auditEntry(actor, tenantId, 'policy.version.create', `${eventType}@${version}`, previous, policy),
    );
    this.registry.putPolicyVersion(record);
    return record;
  }

  policyVersions(tenantId: string, eventType: string): PolicyVersionRecord[] {
    this.#eventTypeFor(tenantId, eventType);
    return this.registry.policyVersions(tenantId, eventType);
  }

  policyVersion(tenantId: string, eventType: string, version: number): PolicyVersionRecord {
    const record = this.registry.policyVersion(tenantId, eventType, version);
    if (record === undefined) {
      throw new VigilError('not_found', { message: `No version ${version} of the '${eventType}' policy.` });
    }
    return record;
  }

  policyState(tenantId: string, eventType: string): PolicyState {
    this.#eventTypeFor(tenantId, eventType);
    return this.registry.policyState(tenantId, eventType) ?? emptyState(tenantId, eventType);
  }

  /**
   * Publishes a version. With `canaryPercent` below 100 it decides for that share of events while
   * the published version keeps the rest; without it (or at 100) it becomes the published version.
   */
  async publish(actor: string, tenantId: string, eventType: string, version: number, canaryPercent?: number) {
    this.policyVersion(tenantId, eventType, version);
    const before = this.policyState(tenantId, eventType);
    const after: PolicyState = {
      ...before,
      history: [...before.history],
      updatedAt: new Date().toISOString(),
    };
    after.shadows = before.shadows.filter((shadow) => shadow !== version);
    if (canaryPercent !== undefined && canaryPercent < 100) {
      if (before.published === null) {
        throw new VigilError('invalid_state', {
          message: 'A canary needs a published version to share traffic with.',
        });
      }
      if (before.published === version)
        throw new VigilError('invalid_state', { message: 'This version is already published.' });
      after.canary = { version, percent: canaryPercent };
    } else {
      if (before.published !== null && before.published !== version) after.history.push(before.published);
      after.published = version;
      after.canary = null;
    }
    return this.#putState(actor, 'policy.publish', before, after);
  }

  async setShadow(actor: string, tenantId: string, eventType: string, version: number, enabled: boolean) {
    this.policyVersion(tenantId, eventType, version);
    const before = this.policyState(tenantId, eventType);
    const shadows = before.shadows.filter((shadow) => shadow !== version);
    if (enabled) {
      if (before.published === version)
        throw new VigilError('invalid_state', { message: 'This version is published.' });
      if (shadows.length >= 3)
        throw new VigilError('invalid_state', { message: 'At most 3 versions run in shadow.' });
      shadows.push(version);
    }
    const after: PolicyState = { ...before, shadows, updatedAt: new Date().toISOString() };
    return this.#putState(actor, enabled ? 'policy.shadow.start' : 'policy.shadow.stop', before, after);
  }

  /** Back to the version published before the current one; any canary ends. */
  async rollback(actor: string, tenantId: string, eventType: string) {
    const before = this.policyState(tenantId, eventType);
    const history = [...before.history];
    const previous = history.pop();
    if (previous === undefined)
      throw new VigilError('invalid_state', { message: 'No earlier published version.' });
    const after: PolicyState = {
      ...before,
      published: previous,
      history,
      canary: null,
      updatedAt: new Date().toISOString(),
    };
    return this.#putState(actor, 'policy.rollback', before, after);
  }

  async #putState(
    actor: string,
    action: string,
    before: PolicyState,
    after: PolicyState,
  ): Promise<PolicyState> {
    // Compile before storing, so a stored state always serves.
    const probe = this.registry;
    probe.putPolicyState(after);
    try {
      await this.store.putPolicyState(
        after,
        auditEntry(actor, after.tenantId, action, after.eventType, before, after),
      );
    } catch (error) {
      probe.putPolicyState(before);
      throw error;
    }
    return after;
  }

  /** Evaluates a draft on sample events; nothing is stored or counted. */
  testPolicy(tenantId: string, eventType: string, policy: PolicyInput, events: EventInput[]) {
    const { definition, compiled } = this.compileDraft(tenantId, eventType, policy);
    return events.map((event) => {
      const details =
        event.type === eventType
          ? definition.validate(event.fields)
          : [{ path: 'type', message: `must be '${eventType}'` }];
      if (details.length > 0) {
        return { event_id: event.id, ...new VigilError('invalid_event', { details }).toBody() };
      }
      const fields: Record<string, unknown> = { ...event.fields, type: event.type, id: event.id };
      fields.timestamp = event.timestamp ?? new Date().toISOString();
      const lists = this.registry.lists && new DecisionLists(this.registry.lists, tenantId);
      const outcome = evaluatePolicy(
        compiled,
        { event: fields, features: {}, models: {} },
        lists,
        this.policyCpuBudgetMs,
      );
      return { event_id: event.id, ...outcome };
    });
  }
}

function emptyState(tenantId: string, eventType: string): PolicyState {
  return {
    tenantId,
    eventType,
    published: null,
    history: [],
    canary: null,
    shadows: [],
    updatedAt: new Date().toISOString(),
  };
}

function compileDetails(error: PolicyCompileFailure) {
  return error.errors.map((detail) => ({
    path: `rules.${detail.rule}.when`,
    message: detail.message,
    rule: detail.rule,
    line: detail.line,
    column: detail.column,
  }));
}
