import {
  type ConfigRegistry,
  type ConfigStore,
  checkFeature,
  compilePolicy,
  counterIdOf,
  type FeatureRecord,
  type FeatureService,
  featureValueType,
  PolicyCompileFailure,
  parseWindow,
  type RuleCompiler,
} from '@vigil/engine';
import { type FeatureInput, VigilError } from '@vigil/protocol';
import { auditEntry } from './audit.js';

/**
 * Changes feature definitions: checks them against the tenant's event types and serving policies,
 * stores them with an audit entry, serves them at once, and computes a new or changed feature from
 * the stored events of its window in the background (`status` says when it is done).
 */
export class FeatureControl {
  constructor(
    private readonly store: ConfigStore,
    private readonly registry: ConfigRegistry,
    private readonly features: FeatureService,
    private readonly compiler: RuleCompiler,
  ) {}

  list(tenantId: string) {
    this.#tenant(tenantId);
    return this.registry
      .features(tenantId)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((record) => this.view(record));
  }

  get(tenantId: string, name: string) {
    this.#tenant(tenantId);
    const record = this.registry.feature(tenantId, name);
    if (record === undefined) throw new VigilError('not_found', { message: `No feature '${name}'.` });
    return this.view(record);
  }

  view(record: FeatureRecord) {
    const counterId = counterIdOf(record);
    const progress = this.features.progress(counterId);
    return {
      name: record.name,
      ...record.definition,
      value_type: featureValueType(
        record.definition,
        (type) => this.registry.eventType(record.tenantId, type)?.record,
      ),
      version: record.version,
      updated_at: record.updatedAt,
      status: this.features.status(counterId),
      // While backfilling: how much of the window's stored events has been replayed.
      ...(progress !== undefined && {
        backfill: { progress: Math.floor(progress.fraction * 1000) / 1000, events_replayed: progress.events },
      }),
    };
  }

  async put(actor: string, tenantId: string, name: string, definition: FeatureInput) {
    this.#tenant(tenantId);
    const issues = checkFeature(definition, (type) => this.registry.eventType(tenantId, type)?.record);
    if (issues.length > 0) throw new VigilError('invalid_config', { details: issues });
    const before = this.registry.feature(tenantId, name);
    if (before !== undefined && JSON.stringify(before.definition) === JSON.stringify(definition))
      return { record: before, created: false };
    const record: FeatureRecord = {
      tenantId,
      name,
      definition,
      version: (before?.version ?? 0) + 1,
      updatedAt: new Date().toISOString(),
    };
    const others = this.registry.features(tenantId).filter((feature) => feature.name !== name);
    const broken = this.#brokenServing(tenantId, [...others, record]);
    if (broken !== undefined) {
      throw new VigilError('invalid_config', {
        message: `This change would break serving policy version ${broken.version} of '${broken.eventType}'.`,
        details: broken.details,
      });
    }
    await this.store.putFeature(
      record,
      auditEntry(
        actor,
        tenantId,
        before === undefined ? 'feature.create' : 'feature.update',
        name,
        before,
        record,
      ),
    );
    this.registry.putFeature(record);
    if (before !== undefined) await this.features.drop([counterIdOf(before)]);
    void this.features.backfill(
      tenantId,
      name,
      counterIdOf(record),
      parseWindow(definition.window) as number,
    );
    return { record, created: before === undefined };
  }

  async delete(actor: string, tenantId: string, name: string): Promise<void> {
    this.#tenant(tenantId);
    const before = this.registry.feature(tenantId, name);
    if (before === undefined) throw new VigilError('not_found', { message: `No feature '${name}'.` });
    const rest = this.registry.features(tenantId).filter((feature) => feature.name !== name);
    const broken = this.#brokenServing(tenantId, rest);
    if (broken !== undefined) {
      throw new VigilError('invalid_state', {
        message: `Feature '${name}' is used by serving policy version ${broken.version} of '${broken.eventType}'.`,
        details: broken.details,
      });
    }
    await this.store.deleteFeature(
      tenantId,
      name,
      auditEntry(actor, tenantId, 'feature.delete', name, before, null),
    );
    this.registry.deleteFeature(tenantId, name);
    await this.features.drop([counterIdOf(before)]);
  }

  #tenant(tenantId: string): void {
    if (this.registry.tenant(tenantId) === undefined)
      throw new VigilError('not_found', { message: `No tenant '${tenantId}'.` });
  }

  /** The first published, canary or shadow version that would not compile with these features. */
  #brokenServing(tenantId: string, features: FeatureRecord[]) {
    for (const definition of this.registry.eventTypesOf(tenantId)) {
      const eventType = definition.record.name;
      const state = this.registry.policyState(tenantId, eventType);
      if (state === null) continue;
      const serving = [state.published, state.canary?.version, ...state.shadows].filter(
        (version) => typeof version === 'number',
      );
      const environment = this.registry.environment(definition.record, features);
      for (const version of serving) {
        const record = this.registry.policyVersion(tenantId, eventType, version);
        if (record === undefined) continue;
        try {
          compilePolicy(this.compiler, record, environment);
        } catch (error) {
          if (!(error instanceof PolicyCompileFailure)) throw error;
          return {
            eventType,
            version,
            details: error.errors.map((detail) => ({
              path: `policies.${eventType}.${version}.rules.${detail.rule}.when`,
              message: detail.message,
            })),
          };
        }
      }
    }
    return undefined;
  }
}
