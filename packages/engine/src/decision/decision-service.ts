import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DecisionRequest, type DecisionResponse, type EventInput, VigilError } from '@vigil/protocol';
import { activationOf } from '../policy/policy-stage.js';
import { defaultPolicyCpuBudgetMs, evaluatePolicy } from '../policy/strategy.js';
import type { DecisionLog, DecisionRecord, ShadowResult, StoredEvent } from '../ports/decision-log.js';
import type { IdempotencyClaim, IdempotencyKind, IdempotencyStore } from '../ports/idempotency-store.js';
import { type Logger, type Metrics, noopLogger, noopMetrics } from '../ports/observability.js';
import type { ConfigRegistry, EventTypeDefinition } from '../tenancy/config-registry.js';
import { type DeadlinePlan, planDeadline } from './deadline-plan.js';
import { DecisionContext, type DecisionStage } from './decision-context.js';
import { IdempotencyIndex } from './idempotency-index.js';
import { StageOutcome, StageWaits } from './stage-waits.js';
import { timeOrderedId } from './time-ordered-id.js';

/** How long an event id is remembered per tenant: a retry within it gets the first answer. */
export const idempotencyWindowMs = 24 * 60 * 60 * 1000;
export const defaultTimeoutMs = 100;
/**
 * How long a shared claim's pending marker lives: past the longest deadline (5 s) and the durable
 * write, so a node that dies while deciding blocks its event id on other nodes only this long.
 */
export const defaultIdempotencyPendingMs = 10_000;
/** Longest wait between two looks at an event id another node is deciding, ms. */
const maxPendingPollMs = 20;

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
  /**
   * Event ids shared with the other nodes (Redis in scale-out). Asked after this node's own index
   * and together with the log; when it cannot answer, the node decides on what it knows itself.
   */
  sharedIdempotency?: IdempotencyStore;
  /** Life of a shared claim's pending marker, ms (default {@link defaultIdempotencyPendingMs}). */
  idempotencyPendingMs?: number;
  /** The CPU guard's budget for evaluating a shadow version on one event, ms. */
  policyCpuBudgetMs?: number;
  now?: () => number;
}

export interface DecisionOutcome {
  /** The answer as JSON text: the bytes to send, the same as the decision log stores. */
  readonly json: string;
  /** The answer (for a replay the node kept only as text, parsed from `json`). */
  readonly response: DecisionResponse;
  /** True when this is the stored answer to an earlier request with the same event id. */
  readonly replayed: boolean;
}

/** Something that reacts to reported events (`/v1/events`), which go through no stages. */
export interface EventObserver {
  observe(tenantId: string, event: StoredEvent, receivedAt: number): Promise<void>;
}

export type ReportOutcome = { event_id: string; status: 'accepted' | 'duplicate' };

/** A decision made here (`created`) or found already made, by this node or another. */
interface Decided {
  response: DecisionResponse;
  /** `response` as JSON text. */
  json: string;
  created: boolean;
}

/** An answer found already made (by this node before a restart, or by another node). */
function found(response: DecisionResponse): Decided {
  return { response, json: JSON.stringify(response), created: false };
}

/**
 * Decides on events: validate, replay a known event id, run the stages, make the record durable,
 * then answer. The same path serves single and batch requests.
 *
 * Deadlines (`deadline-plan.ts`): the caller's `timeout_ms` counts from the request's arrival.
 * Each asynchronous stage is waited for within its budget and left out when it overruns, rejects
 * or throws: it is named in `degraded` and rules that need it follow `on_missing`. Rules stop at
 * their cut-off (the CPU guard). The record is written before the answer in every case.
 */
export class DecisionService {
  readonly #registry: ConfigRegistry;
  readonly #log: DecisionLog;
  readonly #stages: DecisionStage[];
  readonly #observers: EventObserver[];
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #policyCpuBudgetMs: number;
  readonly #waits = new StageWaits();
  readonly #shared: IdempotencyStore | undefined;
  readonly #pendingMs: number;
  /**
   * Pending and recent results by kind, tenant and event id.
   * While a decision is made, its pending outcome (concurrent duplicates wait for it); once made,
   * only its answer as JSON text (`true` for a reported event). Keeping the whole record for 24 h
   * would keep every parsed event alive through young-generation collections, which then copy it:
   * measured, that made scavenges of 2.5–10 ms under load. The text is one string where the
   * answer object is about ten objects.
   */
  readonly #recent: IdempotencyIndex<Promise<Decided> | Promise<{ created: boolean }> | string | true>;

  constructor(options: DecisionServiceOptions) {
    this.#registry = options.registry;
    this.#log = options.log;
    this.#stages = options.stages ?? [];
    this.#observers = options.observers ?? [];
    this.#metrics = options.metrics ?? noopMetrics;
    this.#logger = options.logger ?? noopLogger;
    this.#now = options.now ?? Date.now;
    this.#policyCpuBudgetMs = options.policyCpuBudgetMs ?? defaultPolicyCpuBudgetMs;
    this.#shared = options.sharedIdempotency;
    this.#pendingMs = options.idempotencyPendingMs ?? defaultIdempotencyPendingMs;
    this.#recent = new IdempotencyIndex(
      idempotencyWindowMs,
      options.idempotencyCacheSize ?? 200_000,
      this.#now,
    );
  }

  /**
   * Decides on one event. Throws `VigilError` for input that cannot be decided on. `arrivedAt` is
   * the `performance.now()` at which the request arrived; the deadline counts from it (default:
   * now).
   */
  async decide(tenantId: string, request: DecisionRequest, arrivedAt?: number): Promise<DecisionOutcome> {
    const arrival = arrivedAt ?? performance.now();
    const receivedAt = this.#now();
    const eventType = this.#checked(tenantId, request);
    const key = `d\u0000${tenantId}\u0000${request.id}`;
    const earlier = this.#recent.get(key);
    if (earlier !== undefined) {
      if (earlier instanceof Promise) {
        const decided = (await earlier) as Decided;
        return { json: decided.json, response: decided.response, replayed: true };
      }
      if (typeof earlier === 'string')
        return { json: earlier, response: JSON.parse(earlier) as DecisionResponse, replayed: true };
    }
    const pending = this.#decideOnce(tenantId, request, eventType, arrival, receivedAt);
    this.#recent.set(key, pending);
    try {
      const { response, json, created } = await pending;
      this.#recent.update(key, json);
      return { json, response, replayed: !created };
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
      const lookup = settled(
        this.#log.findByEventId(tenantId, event.id, receivedAt - idempotencyWindowMs, 'event'),
      );
      // Another node holding the id (pending) will accept the event: this one is a duplicate.
      const claim = this.#shared === undefined ? undefined : await this.#claim(tenantId, 'event', event.id);
      if (claim !== undefined && claim.state !== 'claimed') return { created: false };
      const claimed = claim !== undefined;
      let earlier: DecisionRecord | undefined;
      try {
        earlier = unwrap(await lookup);
      } catch (error) {
        if (claimed) this.#release(tenantId, 'event', event.id);
        throw error;
      }
      if (earlier !== undefined) {
        if (claimed) this.#complete(tenantId, 'event', event.id, null);
        return { created: false };
      }
      const record: DecisionRecord = {
        decisionId: timeOrderedId(receivedAt),
        tenantId,
        kind: 'event',
        createdAt: receivedAt,
        event: storedEvent(event, receivedAt),
        verdict: null,
        response: null,
        ruleIds: [],
        entities: entitiesOf(event.fields, eventType),
      };
      try {
        await this.#log.append(record);
      } catch (error) {
        if (claimed) this.#release(tenantId, 'event', event.id);
        throw error;
      }
      if (claimed) this.#complete(tenantId, 'event', event.id, null);
      // After the append: a restart rebuilds features from the log, so the log is what counts.
      for (const observer of this.#observers) {
        try {
          await observer.observe(tenantId, record.event, receivedAt);
        } catch (error) {
          this.#logger.warn({ err: error, event: event.id }, 'reported event not observed');
        }
      }
      return { created: true };
    })();
    this.#recent.set(key, pending);
    try {
      const { created } = await pending;
      this.#recent.update(key, true);
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
      const outcome = evaluatePolicy(policy, activation, context.lists, this.#policyCpuBudgetMs);
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
    arrivedAt: number,
    receivedAt: number,
  ): Promise<Decided> {
    const plan = planDeadline(arrivedAt, request.timeout_ms ?? defaultTimeoutMs);
    if (this.#shared === undefined) {
      const earlier = await this.#log.findByEventId(
        tenantId,
        request.id,
        receivedAt - idempotencyWindowMs,
        'decision',
      );
      if (earlier !== undefined) return found(answerOf(earlier));
      return this.#decideNew(tenantId, request, eventType, plan, receivedAt, false);
    }
    // With a shared store, the claim and the log lookup go out together: the answer waits for
    // the slower of the two round trips, not both.
    const lookup = settled(
      this.#log.findByEventId(tenantId, request.id, receivedAt - idempotencyWindowMs, 'decision'),
    );
    const claim = await this.#claim(tenantId, 'decision', request.id, plan);
    if (claim?.state === 'done' && claim.response !== null) return found(claim.response);
    const claimed = claim?.state === 'claimed';
    try {
      const earlier = unwrap(await lookup);
      if (earlier !== undefined) {
        const response = answerOf(earlier);
        if (claimed) this.#complete(tenantId, 'decision', request.id, response);
        return found(response);
      }
      return await this.#decideNew(tenantId, request, eventType, plan, receivedAt, claimed);
    } catch (error) {
      if (claimed) this.#release(tenantId, 'decision', request.id);
      throw error;
    }
  }

  /**
   * Asks the shared store for an event id; undefined when it cannot answer (the node then relies
   * on its own index and the log). A decision id another node is deciding is asked for again, a
   * little later each time, until it is done or free, or until `plan`'s stages cut-off: then the
   * request is refused with a retryable 409 `conflict`, as its first answer is not known yet.
   * Reported events (no `plan`) do not wait: a pending one is a duplicate.
   */
  async #claim(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    plan?: DeadlinePlan,
  ): Promise<IdempotencyClaim | undefined> {
    const shared = this.#shared as IdempotencyStore;
    for (let pause = 1; ; pause = Math.min(pause * 2, maxPendingPollMs)) {
      let claim: IdempotencyClaim;
      try {
        claim = await shared.claim(tenantId, kind, eventId, this.#pendingMs);
      } catch {
        // The shared store's guard logs and counts its failures; here it is only left out.
        return undefined;
      }
      if (claim.state !== 'pending' || plan === undefined) return claim;
      const left = plan.stagesCutoff - performance.now();
      if (left <= 0) {
        throw new VigilError('conflict', {
          message: `A decision on event '${eventId}' is still being made on another node; retry with the same id to get it.`,
          retryable: true,
        });
      }
      await sleep(Math.min(pause, left));
    }
  }

  /** Stores the answer for other nodes; the answer does not wait for it (the record is durable). */
  #complete(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    response: DecisionResponse | null,
  ): void {
    (this.#shared as IdempotencyStore)
      .complete(tenantId, kind, eventId, response, idempotencyWindowMs)
      .catch((error: unknown) =>
        this.#logger.warn({ err: error, event: eventId }, 'shared idempotency answer not stored'),
      );
  }

  /** Frees a claim whose decision failed, so a retry on any node decides. */
  #release(tenantId: string, kind: IdempotencyKind, eventId: string): void {
    (this.#shared as IdempotencyStore)
      .release(tenantId, kind, eventId)
      .catch((error: unknown) =>
        this.#logger.warn({ err: error, event: eventId }, 'shared idempotency claim not released'),
      );
  }

  async #decideNew(
    tenantId: string,
    request: DecisionRequest,
    eventType: EventTypeDefinition,
    plan: DeadlinePlan,
    receivedAt: number,
    claimed: boolean,
  ): Promise<Decided> {
    const arrivedAt = plan.arrivedAt;
    const context = new DecisionContext(
      tenantId,
      storedEvent(request, receivedAt),
      eventType,
      receivedAt,
      plan,
    );
    const stages = this.#stages;
    for (let index = 0; index < stages.length; index++) {
      const stage = stages[index] as DecisionStage;
      let result: void | Promise<void>;
      try {
        result = stage.run(context);
      } catch (error) {
        // A stage should reject rather than throw; a throw is a bug, worth a line in the log.
        this.#logger.warn({ err: error, stage: stage.name }, 'decision stage threw; left out');
        context.leaveOut(stage.name);
        continue;
      }
      if (result === undefined) continue;
      const share = stage.budgetShare;
      let until = plan.stagesCutoff;
      if (share !== undefined && share < 1) {
        const now = performance.now();
        until = now + Math.max(0, until - now) * share;
      }
      if ((await this.#waits.wait(result, until)) !== StageOutcome.Done) context.leaveOut(stage.name);
    }
    const response: DecisionResponse = {
      decision_id: timeOrderedId(receivedAt),
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
    // The latency the client is told runs from the request's arrival to the record being complete,
    // so it is set before the write and then stays as recorded: a replay returns the same body.
    response.latency_ms = Math.round((performance.now() - arrivedAt) * 1000) / 1000;
    // Serialised once: the reply sends this text, the log stores it, and a retry gets it back.
    const json = JSON.stringify(response);
    await this.#log.append(record, json);
    if (claimed) this.#complete(tenantId, 'decision', request.id, response);
    this.#metrics.decision(tenantId, context.verdict);
    if (context.shadows.length > 0) setImmediate(() => void this.#runShadows(context, record));
    return { response, json, created: true };
  }
}

/**
 * The outcome of `promise` as a value, so that it may be awaited later: a rejection while the
 * caller awaits something else is not an unhandled one.
 */
function settled<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

function unwrap<T>(outcome: { value: T } | { error: unknown }): T {
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

function answerOf(record: DecisionRecord): DecisionResponse {
  if (record.response === null)
    throw new VigilError('internal', { message: 'A stored decision has no answer.' });
  return record.response;
}

let lastIsoMs = Number.NaN;
let lastIso = '';

/**
 * `new Date(ms).toISOString()`, remembered for the last millisecond asked: under load several
 * events arrive in the same millisecond, and formatting a date is a few percent of a decision.
 */
function isoTime(ms: number): string {
  if (ms !== lastIsoMs) {
    lastIso = new Date(ms).toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}

function storedEvent(event: EventInput, receivedAt: number): StoredEvent {
  return {
    type: event.type,
    id: event.id,
    timestamp: event.timestamp ?? isoTime(receivedAt),
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
