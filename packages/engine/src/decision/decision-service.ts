import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type DecisionRequest, type DecisionResponse, type EventInput, VigilError } from '@vigil/protocol';
import { activationOf } from '../policy/policy-stage.js';
import { evaluatePolicy } from '../policy/strategy.js';
import type { DecisionLog, DecisionRecord, ShadowResult, StoredEvent } from '../ports/decision-log.js';
import { type Logger, type Metrics, noopLogger, noopMetrics } from '../ports/observability.js';
import type { ConfigRegistry, EventTypeDefinition } from '../tenancy/config-registry.js';
import { DecisionContext, type DecisionStage } from './decision-context.js';
import { IdempotencyIndex } from './idempotency-index.js';

/** How long an event id is remembered per tenant: a retry within it gets the first answer. */
export const idempotencyWindowMs = 24 * 60 * 60 * 1000;
export const defaultTimeoutMs = 100;

export interface DecisionServiceOptions {
  registry: ConfigRegistry;
  log: DecisionLog;
  stages?: DecisionStage[];
  /** Told about every reported event once it is durable (features count them). */
  observers?: EventObserver[];
  metrics?: Metrics;
  logger?: Logger;
  /** Recent results kept in memory for retries; older ones are read from the log. */
  idempotencyCacheSize?: number;
  now?: () => number;
}

export interface DecisionOutcome {
  response: DecisionResponse;
  /** True when this is the stored answer to an earlier request with the same event id. */
  replayed: boolean;
}

/** Something that reacts to reported events (`/v1/events`), which go through no stages. */
export interface EventObserver {
  observe(tenantId: string, event: StoredEvent, receivedAt: number): Promise<void>;
}

export type ReportOutcome = { event_id: string; status: 'accepted' | 'duplicate' };

/**
 * Decides on events: validate, replay a known event id, run the stages, make the record durable,
 * then answer. The same path serves single and batch requests.
 */
export class DecisionService {
  readonly #registry: ConfigRegistry;
  readonly #log: DecisionLog;
  readonly #stages: DecisionStage[];
  readonly #observers: EventObserver[];
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Pending and recent results by kind, tenant and event id; `created` is false for a stored one. */
  readonly #recent: IdempotencyIndex<Promise<{ record: DecisionRecord; created: boolean }>>;

  constructor(options: DecisionServiceOptions) {
    this.#registry = options.registry;
    this.#log = options.log;
    this.#stages = options.stages ?? [];
    this.#observers = options.observers ?? [];
    this.#metrics = options.metrics ?? noopMetrics;
    this.#logger = options.logger ?? noopLogger;
    this.#now = options.now ?? Date.now;
    this.#recent = new IdempotencyIndex(
      idempotencyWindowMs,
      options.idempotencyCacheSize ?? 200_000,
      this.#now,
    );
  }

  /** Decides on one event. Throws `VigilError` for input that cannot be decided on. */
  async decide(tenantId: string, request: DecisionRequest): Promise<DecisionOutcome> {
    const startedAt = performance.now();
    const receivedAt = this.#now();
    const eventType = this.#checked(tenantId, request);
    const key = `d\u0000${tenantId}\u0000${request.id}`;
    const earlier = this.#recent.get(key);
    if (earlier !== undefined) return replay((await earlier).record);
    const pending = this.#decideOnce(tenantId, request, eventType, startedAt, receivedAt);
    this.#recent.set(key, pending);
    try {
      const { record, created } = await pending;
      return created ? { response: record.response as DecisionResponse, replayed: false } : replay(record);
    } catch (error) {
      this.#recent.delete(key);
      throw error;
    }
  }

  /** Records events that need no decision; a known event id is acknowledged as a duplicate. */
  async report(tenantId: string, event: EventInput): Promise<ReportOutcome> {
    const eventType = this.#checked(tenantId, event);
    const key = `e\u0000${tenantId}\u0000${event.id}`;
    if (this.#recent.get(key) !== undefined) return { event_id: event.id, status: 'duplicate' };
    const receivedAt = this.#now();
    const pending = (async () => {
      const earlier = await this.#log.findByEventId(
        tenantId,
        event.id,
        receivedAt - idempotencyWindowMs,
        'event',
      );
      if (earlier !== undefined) return { record: earlier, created: false };
      const record: DecisionRecord = {
        decisionId: randomUUID(),
        tenantId,
        kind: 'event',
        createdAt: receivedAt,
        event: storedEvent(event, receivedAt),
        verdict: null,
        response: null,
        ruleIds: [],
        entities: entitiesOf(event.fields, eventType),
      };
      await this.#log.append(record);
      // After the append: a restart rebuilds features from the log, so the log is what counts.
      for (const observer of this.#observers) {
        try {
          await observer.observe(tenantId, record.event, receivedAt);
        } catch (error) {
          this.#logger.warn({ err: error, event: event.id }, 'reported event not observed');
        }
      }
      return { record, created: true };
    })();
    this.#recent.set(key, pending);
    try {
      const { created } = await pending;
      return { event_id: event.id, status: created ? 'accepted' : 'duplicate' };
    } catch (error) {
      this.#recent.delete(key);
      throw error;
    }
  }

  /** Evaluates shadow versions after the answer is out; their results never change it. */
  async #runShadows(context: DecisionContext, record: DecisionRecord): Promise<void> {
    const activation = activationOf(context);
    const results: ShadowResult[] = context.shadows.map((policy) => {
      const outcome = evaluatePolicy(policy, activation, context.lists);
      this.#metrics.shadow(
        context.tenantId,
        policy.version,
        outcome.verdict,
        outcome.verdict === context.verdict,
      );
      return {
        version: policy.version,
        verdict: outcome.verdict,
        score: outcome.score,
        rules: outcome.rules.map((rule) => rule.id),
        errors: outcome.errors.map((error) => error.rule),
      };
    });
    try {
      await this.#log.recordShadows(context.tenantId, record.decisionId, results);
    } catch (error) {
      this.#logger.warn({ err: error, decision: record.decisionId }, 'shadow results not recorded');
    }
  }

  #checked(tenantId: string, event: EventInput): EventTypeDefinition {
    const eventType = this.#registry.eventType(tenantId, event.type);
    if (eventType === undefined) {
      throw new VigilError('unknown_event_type', {
        message: `Event type '${event.type}' is not defined for this tenant.`,
        details: [{ path: 'type', message: 'is not a defined event type' }],
      });
    }
    const details = eventType.validate(event.fields);
    if (details.length > 0) throw new VigilError('invalid_event', { details });
    return eventType;
  }

  async #decideOnce(
    tenantId: string,
    request: DecisionRequest,
    eventType: EventTypeDefinition,
    startedAt: number,
    receivedAt: number,
  ): Promise<{ record: DecisionRecord; created: boolean }> {
    const earlier = await this.#log.findByEventId(
      tenantId,
      request.id,
      receivedAt - idempotencyWindowMs,
      'decision',
    );
    if (earlier !== undefined) return { record: earlier, created: false };
    const timeoutMs = request.timeout_ms ?? defaultTimeoutMs;
    const context = new DecisionContext(
      tenantId,
      storedEvent(request, receivedAt),
      eventType,
      startedAt + timeoutMs,
      receivedAt,
    );
    for (const stage of this.#stages) await runStage(stage, context);
    const response: DecisionResponse = {
      decision_id: randomUUID(),
      event_id: request.id,
      verdict: context.verdict,
      score: context.score,
      rules: context.rules,
      tags: context.tags,
      policy_version: context.policyVersion,
      degraded: context.degraded,
      errors: context.errors,
      latency_ms: 0,
    };
    const record: DecisionRecord = {
      decisionId: response.decision_id,
      tenantId,
      kind: 'decision',
      createdAt: receivedAt,
      event: context.event,
      verdict: context.verdict,
      response,
      ruleIds: context.rules.map((rule) => rule.id),
      entities: entitiesOf(request.fields, eventType),
    };
    if (context.features !== undefined) record.features = context.features;
    // The latency the client is told is the time to a durable record, so it is set before the
    // write and then stays as recorded: a replay returns the same body.
    response.latency_ms = Math.round((performance.now() - startedAt) * 1000) / 1000;
    await this.#log.append(record);
    this.#metrics.decision(tenantId, context.verdict);
    if (context.shadows.length > 0) setImmediate(() => void this.#runShadows(context, record));
    return { record, created: true };
  }
}

function replay(record: DecisionRecord): DecisionOutcome {
  if (record.response === null)
    throw new VigilError('internal', { message: 'A stored decision has no answer.' });
  return { response: record.response, replayed: true };
}

async function runStage(stage: DecisionStage, context: DecisionContext): Promise<void> {
  const result = stage.run(context);
  if (result === undefined) return;
  const left = context.deadline - performance.now();
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, left), 'overrun');
  });
  try {
    const outcome = await Promise.race([result.then(() => 'done' as const), overrun]);
    if (outcome === 'overrun') context.degraded.push(stage.name);
  } catch {
    context.degraded.push(stage.name);
  } finally {
    clearTimeout(timer);
  }
}

function storedEvent(event: EventInput, receivedAt: number): StoredEvent {
  return {
    type: event.type,
    id: event.id,
    timestamp: event.timestamp ?? new Date(receivedAt).toISOString(),
    fields: event.fields,
  };
}

function entitiesOf(fields: Record<string, unknown>, eventType: EventTypeDefinition): string[] {
  const entities: string[] = [];
  for (const name of eventType.entityFields) {
    const value = fields[name];
    if (typeof value === 'string' && !entities.includes(value)) entities.push(value);
  }
  return entities;
}
