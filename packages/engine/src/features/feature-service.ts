import type { DecisionContext, DecisionStage } from '../decision/decision-context.js';
import type { CounterOperation, CounterStore, CounterValue } from '../ports/counter-store.js';
import type { StoredEvent } from '../ports/decision-log.js';
import type { EventHistory } from '../ports/event-history.js';
import { type Logger, noopLogger } from '../ports/observability.js';
import type { IpInfo } from '../rules/vigil-functions.js';
import {
  counterIdOf,
  type FeatureProgram,
  type FeatureRecord,
  featureUsesIpData,
  parseWindow,
} from './feature-definition.js';
import type { KeyServices } from './feature-keys.js';
import { bucketsPerWindow } from './memory-counter-store.js';

export interface FeatureServiceOptions {
  store: CounterStore;
  /** The stored events, for rebuilding after a restart and backfilling a new feature. */
  history: EventHistory;
  /** The features of a tenant's event type, compiled. */
  programsOf: (tenantId: string, eventType: string) => readonly FeatureProgram[];
  logger?: Logger;
  now?: () => number;
  /**
   * The IP database lookup for `asn(...)` keys, when it is there from the start. A database that
   * loads later is given to {@link FeatureService.useIpData} instead.
   */
  ipInfo?: (ip: string) => IpInfo | undefined;
}

/** Where a feature's values come from right now. */
export type FeatureStatus = 'ready' | 'backfilling' | 'failed';

/** How far a running backfill has come: stored events are replayed oldest first. */
export interface BackfillProgress {
  /** Share of the window's time span replayed, 0..1. */
  readonly fraction: number;
  /** Stored events replayed so far. */
  readonly events: number;
}

interface BackfillRun {
  /** Live events count from here; stored events before it are replayed. */
  readonly since: number;
  /** Where the replay starts (the window's reach before `since`). */
  readonly from: number;
  /** `createdAt` of the last replayed record. */
  reached: number;
  events: number;
}

/** The operations of one event and the features they belong to (absent `by` fields leave one out). */
interface EventOperations {
  names: string[];
  operations: CounterOperation[];
}

/**
 * Real-time features. As a decision stage it updates every feature of the event's type with the
 * event and reads their values (one batched store call), which rules see as `features.<name>`
 * and the decision log stores with the decision. Reported events update features the same way.
 *
 * Every feature of the event type is computed, referenced by a serving policy or not: each must
 * be updated anyway for its state to be right when a policy starts to use it, the read costs
 * little beside the update, and the decision log then keeps every value for backtests.
 */
export class FeatureService implements DecisionStage {
  readonly name = 'features';
  readonly #store: CounterStore;
  readonly #history: EventHistory;
  readonly #programsOf: FeatureServiceOptions['programsOf'];
  readonly #logger: Logger;
  readonly #now: () => number;
  /**
   * Counters being backfilled: live events count only from `since`, history before it. A newer
   * backfill of the same counter, or its drop, replaces the entry and so stops the older one.
   */
  readonly #backfilling = new Map<string, BackfillRun>();
  readonly #failed = new Set<string>();
  /** What derived keys look up; one object for the service's life, changed in place. */
  readonly #keyServices: KeyServices;

  constructor(options: FeatureServiceOptions) {
    this.#store = options.store;
    this.#history = options.history;
    this.#programsOf = options.programsOf;
    this.#logger = options.logger ?? noopLogger;
    this.#now = options.now ?? Date.now;
    this.#keyServices = { ipInfo: options.ipInfo };
  }

  /**
   * Starts using an IP database that arrived after the start (call it after `rebuild`). Until
   * then features keyed by `asn(...)` had no key, so held nothing and the replay on start skipped
   * their history: each of `features` that needs IP data is computed again from the stored events
   * of its window, and counts live events from now.
   */
  async useIpData(
    ipInfo: (ip: string) => IpInfo | undefined,
    features: readonly FeatureRecord[],
  ): Promise<void> {
    // Synchronously, before any later event: from here keys have an ASN and the backfills' `since`.
    this.#keyServices.ipInfo = ipInfo;
    await Promise.all(
      features
        .filter((record) => featureUsesIpData(record.definition))
        .map((record) =>
          this.backfill(
            record.tenantId,
            record.name,
            counterIdOf(record),
            parseWindow(record.definition.window) as number,
          ),
        ),
    );
  }

  run(context: DecisionContext): Promise<void> | undefined {
    const programs = this.#programsOf(context.tenantId, context.event.type);
    if (programs.length === 0) return undefined;
    const batch = this.#operationsOf(programs, context.event, context.receivedAt);
    return this.#store.apply(context.receivedAt, batch.operations, `d:${context.event.id}`).then((values) => {
      context.features = valuesOf(batch, values);
      // A store answering from a fallback (partial counts) marks its results `degraded: true`.
      if ((values as { degraded?: boolean }).degraded === true) context.markDegraded(this.name);
    });
  }

  /** Counts a reported event (`/v1/events`) that needs no decision. */
  async observe(tenantId: string, event: StoredEvent, receivedAt: number): Promise<void> {
    const programs = this.#programsOf(tenantId, event.type);
    if (programs.length === 0) return;
    const batch = this.#operationsOf(programs, event, receivedAt);
    if (batch.operations.length > 0) await this.#store.apply(receivedAt, batch.operations, `e:${event.id}`);
  }

  /**
   * Rebuilds every feature of the given tenants from the stored events of its window; run on start
   * before traffic is taken. Every answered decision and accepted event is in the log before its
   * answer, so nothing that was answered is lost, after SIGTERM or SIGKILL alike.
   */
  async rebuild(tenants: readonly { tenantId: string; longestWindowMs: number }[]): Promise<number> {
    let replayed = 0;
    for (const { tenantId, longestWindowMs } of tenants) {
      if (longestWindowMs <= 0) continue;
      const since = this.#now() - windowReach(longestWindowMs);
      await this.#history.scan(tenantId, since, async (records) => {
        for (const record of records) {
          const programs = this.#programsOf(tenantId, record.event.type).filter(
            (program) => record.createdAt >= this.#now() - windowReach(program.counter.windowMs),
          );
          if (programs.length === 0) continue;
          const batch = this.#operationsOf(programs, record.event, record.createdAt, true);
          if (batch.operations.length > 0) await this.#store.apply(record.createdAt, batch.operations);
          replayed++;
        }
      });
    }
    return replayed;
  }

  /**
   * Computes a new or changed feature from the stored events of its window. Live events count
   * from the moment this is called; stored events before it are replayed, so none counts twice.
   */
  async backfill(tenantId: string, name: string, counterId: string, windowMs: number): Promise<void> {
    const since = this.#now();
    const from = since - windowReach(windowMs);
    const run: BackfillRun = { since, from, reached: from, events: 0 };
    this.#backfilling.set(counterId, run);
    this.#failed.delete(counterId);
    try {
      const programOf = (type: string) =>
        this.#programsOf(tenantId, type).filter((program) => program.counter.id === counterId);
      await this.#history.scan(tenantId, from, async (records) => {
        for (const record of records) {
          if (this.#backfilling.get(counterId) !== run) throw superseded;
          if (record.createdAt >= since) continue;
          run.reached = record.createdAt;
          run.events++;
          const programs = programOf(record.event.type);
          if (programs.length === 0) continue;
          const batch = this.#operationsOf(programs, record.event, record.createdAt, true);
          if (batch.operations.length > 0) await this.#store.apply(record.createdAt, batch.operations);
        }
      });
    } catch (error) {
      if (error !== superseded && this.#backfilling.get(counterId) === run) {
        this.#failed.add(counterId);
        this.#logger.warn({ err: error, tenant: tenantId, feature: name }, 'feature backfill failed');
      }
    } finally {
      if (this.#backfilling.get(counterId) === run) this.#backfilling.delete(counterId);
    }
  }

  /** The progress of a running backfill; undefined when none runs. */
  progress(counterId: string): BackfillProgress | undefined {
    const run = this.#backfilling.get(counterId);
    if (run === undefined) return undefined;
    const span = run.since - run.from;
    return { fraction: span <= 0 ? 1 : Math.min(1, (run.reached - run.from) / span), events: run.events };
  }

  status(counterId: string): FeatureStatus {
    if (this.#backfilling.has(counterId)) return 'backfilling';
    return this.#failed.has(counterId) ? 'failed' : 'ready';
  }

  /** Forgets the state of counters no longer defined, and stops their backfills. */
  async drop(counterIds: readonly string[]): Promise<void> {
    for (const id of counterIds) this.#backfilling.delete(id);
    await this.#store.drop(counterIds);
  }

  #operationsOf(
    programs: readonly FeatureProgram[],
    event: StoredEvent,
    receivedAt: number,
    replay = false,
  ): EventOperations {
    const names: string[] = [];
    const operations: CounterOperation[] = [];
    const fields = event.fields;
    let activation: { event: Record<string, unknown>; features: object; models: object } | undefined;
    for (const program of programs) {
      const key = program.key(fields, this.#keyServices);
      if (key === undefined) continue;
      let update = true;
      if (!replay) {
        const backfill = this.#backfilling.get(program.counter.id);
        // During a backfill, events before its start come from history, not from live traffic.
        if (backfill !== undefined && receivedAt < backfill.since) update = false;
      }
      if (update && program.filter !== undefined) {
        activation ??= {
          event: { ...fields, type: event.type, id: event.id, timestamp: event.timestamp },
          features: {},
          models: {},
        };
        // A filter that errors (for example on an absent optional field) does not count the event.
        const outcome = program.filter.evaluate(activation);
        update = outcome === true;
      }
      let value: number | string | null = null;
      if (program.field !== undefined) {
        const raw = fields[program.field];
        if (typeof raw === 'number') value = raw;
        else if (typeof raw === 'string' || typeof raw === 'boolean') value = String(raw);
        if (value === null) update = false;
      }
      names.push(program.name);
      operations.push({ counter: program.counter, key, update, value });
    }
    return { names, operations };
  }
}

/** How far back events can still count: the window plus the partly filled current bucket. */
function windowReach(windowMs: number): number {
  return windowMs + windowMs / bucketsPerWindow;
}

/** Thrown inside a backfill's scan to stop it once a newer backfill or a drop replaced it. */
const superseded = new Error('backfill superseded');

function valuesOf(batch: EventOperations, values: readonly CounterValue[]): Record<string, unknown> {
  const features: Record<string, unknown> = {};
  for (let index = 0; index < batch.names.length; index++) {
    const value = values[index];
    if (value !== null && value !== undefined) features[batch.names[index] as string] = value;
  }
  return features;
}
