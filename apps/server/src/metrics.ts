import type { Metrics } from '@vigil/engine';
import type { Verdict } from '@vigil/protocol';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { RequestDurations } from './request-durations.js';

/** The node's Prometheus registry and the instruments the server and engine report to. */
export class NodeMetrics implements Metrics {
  readonly registry = new Registry();
  readonly requestDuration = new RequestDurations(
    this.registry,
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
  );
  /**
   * Decisions counted since the last scrape, by tenant, then verdict: a decision adds one to a
   * number here, and the counter takes the sums when scraped (`collect`), instead of hashing a
   * label object per decision.
   */
  readonly #decisionCounts = new Map<string, Map<Verdict, { count: number }>>();
  readonly decisions: Counter<'tenant' | 'verdict'>;

  readonly shadows = new Counter({
    name: 'vigil_shadow_decisions_total',
    help: 'Shadow evaluations, by tenant, version, verdict and agreement with the live verdict.',
    labelNames: ['tenant', 'version', 'verdict', 'agrees'] as const,
    registers: [this.registry],
  });

  readonly admissionRejections = new Counter({
    name: 'vigil_admission_rejections_total',
    help: 'Data-plane requests refused by admission control, by tenant and reason (rate_limited, too_many_concurrent: 429; overloaded: 503).',
    labelNames: ['tenant', 'reason'] as const,
    registers: [this.registry],
  });

  readonly shedRequests = new Counter({
    name: 'vigil_shed_total',
    help: "Data-plane requests shed by the node's concurrency limit, by tenant and outcome (fallback: answered with the tenant's overload fallback; rejected: answered 503).",
    labelNames: ['tenant', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor(queueDepth: () => number, spooled: () => number = () => 0) {
    const counts = this.#decisionCounts;
    this.decisions = new Counter({
      name: 'vigil_decisions_total',
      help: 'Decisions answered, by tenant and verdict.',
      labelNames: ['tenant', 'verdict'] as const,
      registers: [this.registry],
      collect() {
        for (const [tenant, byVerdict] of counts) {
          for (const [verdict, pending] of byVerdict) {
            if (pending.count > 0) this.inc({ tenant, verdict }, pending.count);
            pending.count = 0;
          }
        }
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'vigil_' });
    new Gauge({
      name: 'vigil_decision_log_queue_depth',
      help: 'Decision-log records accepted and not yet durable.',
      registers: [this.registry],
      collect() {
        this.set(queueDepth());
      },
    });
    new Gauge({
      name: 'vigil_decision_log_spooled_records',
      help: 'Decision-log records durable in the local journal that the store has not taken yet.',
      registers: [this.registry],
      collect() {
        this.set(spooled());
      },
    });
  }

  admissionRejected(tenantId: string, reason: string): void {
    this.admissionRejections.labels(tenantId, reason).inc();
  }

  shed(tenantId: string, outcome: 'fallback' | 'rejected'): void {
    this.shedRequests.labels(tenantId, outcome).inc();
  }

  /** Reports the node's adaptive concurrency limit and what is in flight under it, when scraped. */
  observeAdmission(admission: { readonly limit: number; readonly inflight: number }): void {
    new Gauge({
      name: 'vigil_concurrency_limit',
      help: "The node's adaptive concurrency limit for data-plane requests.",
      registers: [this.registry],
      collect() {
        this.set(admission.limit);
      },
    });
    new Gauge({
      name: 'vigil_inflight_requests',
      help: 'Data-plane requests admitted on this node and not yet answered.',
      registers: [this.registry],
      collect() {
        this.set(admission.inflight);
      },
    });
  }

  decision(tenantId: string, verdict: Verdict): void {
    let byVerdict = this.#decisionCounts.get(tenantId);
    if (byVerdict === undefined) {
      byVerdict = new Map();
      this.#decisionCounts.set(tenantId, byVerdict);
    }
    const pending = byVerdict.get(verdict);
    if (pending === undefined) byVerdict.set(verdict, { count: 1 });
    else pending.count += 1;
  }

  shadow(tenantId: string, version: number, verdict: Verdict, agrees: boolean): void {
    this.shadows.labels(tenantId, String(version), verdict, String(agrees)).inc();
  }
}
