import type { ConfigStore, CounterStore, Logger } from '@vigil/engine';
import { VigilError } from '@vigil/protocol';
import { Counter, Gauge, type Registry } from 'prom-client';
import { auditEntry } from '../audit.js';
import { type BreakerOptions, Breakers, breakerStateValue } from './breakers.js';
import { ComponentGuard } from './component-guard.js';
import { EventLoopDelayMonitor } from './event-loop-delay.js';
import {
  type Component,
  components,
  type Fault,
  FaultInjector,
  type FaultInput,
  faultProblems,
  faultView,
} from './faults.js';
import { ResilientCounterStore } from './resilient-counter-store.js';

export interface ResilienceOptions {
  logger: Logger;
  breakers?: Partial<BreakerOptions>;
  now?: () => number;
}

/** `GET /v1/admin/health`. */
export interface HealthReport {
  status: 'ok' | 'degraded';
  components: Record<Component, ComponentHealth>;
  event_loop_delay_ms: { p50: number; p99: number; max: number };
}

export interface ComponentHealth {
  breaker: 'closed' | 'open' | 'half_open';
  faults: number;
  /** Calls that reached an outcome since start, and how many failed. */
  calls: number;
  failures: number;
  /** Calls refused without calling the component because the breaker was open. */
  rejected: number;
  /** Times the breaker opened since start. */
  opened: number;
  opened_at: string | null;
  last_failure: { at: string; message: string } | null;
  /** `counter_store` only: tenants counting locally, events queued for replay, events dropped. */
  local_fallback?: { tenants: number; queued: number; dropped: number };
}

/**
 * The node's resilience: fault injection, a circuit breaker and a guard per component, the
 * counter store's local fallback, event-loop delay, and their metrics and health report.
 */
export class Resilience {
  readonly injector: FaultInjector;
  readonly breakers: Breakers;
  readonly guards: Record<Component, ComponentGuard>;
  readonly loop = new EventLoopDelayMonitor();
  readonly #logger: Logger;
  #degraded: Counter<'tenant' | 'component'> | undefined;
  #dropped: Counter<'tenant'> | undefined;
  #counters: ResilientCounterStore | undefined;

  constructor(options: ResilienceOptions) {
    this.#logger = options.logger;
    const clock = options.now === undefined ? {} : { now: options.now };
    this.injector = new FaultInjector(clock);
    this.breakers = new Breakers({ ...clock, ...options.breakers });
    this.guards = Object.fromEntries(
      components.map((component) => [
        component,
        new ComponentGuard(component, this.injector, this.breakers.of(component)),
      ]),
    ) as Record<Component, ComponentGuard>;
  }

  /** Registers the resilience metrics in the node's Prometheus registry (once, before traffic). */
  observe(registry: Registry): void {
    const registers = [registry];
    const breakers = this.breakers;
    const injector = this.injector;
    new Gauge({
      name: 'vigil_circuit_breaker_state',
      help: 'Circuit breaker state by component: 0 closed, 1 half-open, 2 open.',
      labelNames: ['component'] as const,
      registers,
      collect() {
        for (const breaker of breakers.all())
          this.set({ component: breaker.component }, breakerStateValue[breaker.state]);
      },
    });
    new Gauge({
      name: 'vigil_fault_injections_active',
      help: 'Fault injections in force on this node, by component.',
      labelNames: ['component'] as const,
      registers,
      collect() {
        for (const component of components) this.set({ component }, injector.count(component));
      },
    });
    const loop = this.loop;
    new Gauge({
      name: 'vigil_event_loop_delay_seconds',
      help: 'Event-loop delay over the last 10 s period, by statistic (p50, p99, max).',
      labelNames: ['stat'] as const,
      registers,
      collect() {
        const delay = loop.delay();
        this.set({ stat: 'p50' }, delay.p50 / 1000);
        this.set({ stat: 'p99' }, delay.p99 / 1000);
        this.set({ stat: 'max' }, delay.max / 1000);
      },
    });
    this.#degraded = new Counter({
      name: 'vigil_degraded_total',
      help: 'Decisions answered without a component (named in their `degraded`), by tenant and component.',
      labelNames: ['tenant', 'component'] as const,
      registers,
    });
    this.#dropped = new Counter({
      name: 'vigil_counter_fallback_dropped_total',
      help: 'Events counted locally while the counter store failed and dropped from the full replay queue.',
      labelNames: ['tenant'] as const,
      registers,
    });
    const queued = () => this.#counters?.queued ?? 0;
    new Gauge({
      name: 'vigil_counter_fallback_queue_depth',
      help: 'Events counted locally while the counter store failed, waiting to be replayed into it.',
      registers,
      collect() {
        this.set(queued());
      },
    });
  }

  /** The counter store the node uses: `primary` with the local fallback around it. */
  counterStore(primary: CounterStore): ResilientCounterStore {
    this.#counters = new ResilientCounterStore({
      primary,
      guard: this.guards.counter_store,
      logger: this.#logger,
      onDropped: (tenantId) => this.#dropped?.labels(tenantId).inc(),
    });
    return this.#counters;
  }

  /** Counts a decision answered with degraded components (called once per decision). */
  degraded(tenantId: string, degraded: readonly string[]): void {
    const counter = this.#degraded;
    if (counter !== undefined) for (const component of degraded) counter.labels(tenantId, component).inc();
  }

  /**
   * Starts the injections of `VIGIL_FAULTS`, audited as made by `config:VIGIL_FAULTS`. Their tenants
   * are not checked: a drill may name a tenant this node has not loaded yet.
   */
  async applyConfigured(audit: ConfigStore, inputs: readonly FaultInput[]): Promise<void> {
    for (const input of inputs) await this.addFault(audit, 'config:VIGIL_FAULTS', input, () => true);
  }

  /**
   * Starts an injection and records it in the audit trail (through `audit`, the unguarded config
   * store, so that a `config_store` drill never blocks starting or ending drills).
   */
  async addFault(
    audit: ConfigStore,
    actor: string,
    input: FaultInput,
    tenantExists: (tenantId: string) => boolean,
  ): Promise<Fault> {
    const problems = faultProblems(input);
    if (problems.length > 0) throw new VigilError('invalid_request', { details: problems });
    if (input.tenant !== undefined && !tenantExists(input.tenant))
      throw new VigilError('not_found', { message: `No tenant '${input.tenant}'.` });
    const fault = this.injector.add(input);
    try {
      await audit.appendAudit(
        auditEntry(actor, fault.tenant, 'fault.create', fault.id, null, faultView(fault)),
      );
    } catch (error) {
      // An injection that cannot be audited does not run.
      this.injector.remove(fault.id);
      throw error;
    }
    this.#logger.warn({ fault: faultView(fault), actor }, 'fault injection started');
    return fault;
  }

  /** Ends an injection; its audit entry is written after, and a failure to write it is logged. */
  async removeFault(audit: ConfigStore, actor: string, id: string): Promise<void> {
    const fault = this.injector.remove(id);
    if (fault === undefined) throw new VigilError('not_found', { message: `No active fault '${id}'.` });
    this.#logger.warn({ fault: faultView(fault), actor }, 'fault injection ended');
    try {
      await audit.appendAudit(
        auditEntry(actor, fault.tenant, 'fault.delete', fault.id, faultView(fault), null),
      );
    } catch (error) {
      this.#logger.error({ err: error, fault: fault.id }, 'fault deletion not audited');
    }
  }

  health(): HealthReport {
    let degraded = false;
    const report = {} as Record<Component, ComponentHealth>;
    for (const component of components) {
      const breaker = this.breakers.of(component);
      const openedAt = breaker.openedAt;
      const health: ComponentHealth = {
        breaker: breaker.state,
        faults: this.injector.count(component),
        calls: breaker.calls,
        failures: breaker.failures,
        rejected: breaker.rejected,
        opened: breaker.opened,
        opened_at: openedAt === null ? null : new Date(openedAt).toISOString(),
        last_failure:
          breaker.lastFailure === null
            ? null
            : { at: new Date(breaker.lastFailure.at).toISOString(), message: breaker.lastFailure.message },
      };
      if (component === 'counter_store' && this.#counters !== undefined) {
        health.local_fallback = {
          tenants: this.#counters.degradedTenants.length,
          queued: this.#counters.queued,
          dropped: this.#counters.dropped,
        };
        if (health.local_fallback.tenants > 0) degraded = true;
      }
      if (health.breaker !== 'closed' || health.faults > 0) degraded = true;
      report[component] = health;
    }
    return {
      status: degraded ? 'degraded' : 'ok',
      components: report,
      event_loop_delay_ms: this.loop.delay(),
    };
  }

  close(): void {
    this.loop.close();
  }
}
