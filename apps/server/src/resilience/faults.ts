import { randomBytes } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { type ErrorDetail, literalUnion } from '@vigil/protocol';

/** The dependencies a node guards with a circuit breaker and can inject faults into. */
export const components = [
  'counter_store',
  'list_store',
  'config_store',
  'decision_log',
  'external_data',
] as const;
export type Component = (typeof components)[number];

export const faultKinds = ['latency', 'error', 'outage'] as const;
export type FaultKind = (typeof faultKinds)[number];

/** Body of `POST /v1/admin/faults`, and one element of `VIGIL_FAULTS`. */
export const FaultInput = Type.Object(
  {
    component: literalUnion(components),
    kind: literalUnion(faultKinds),
    latency_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
    rate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    duration_seconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
  },
  { additionalProperties: false },
);
export type FaultInput = Static<typeof FaultInput>;

/** An active injection. Times are epoch ms; the wire view has them as RFC 3339. */
export interface Fault {
  readonly id: string;
  readonly component: Component;
  readonly kind: FaultKind;
  /** Delay added before each affected call; null unless `kind` is `latency`. */
  readonly latencyMs: number | null;
  /** Share of calls affected, 0..1. */
  readonly rate: number;
  /** The only tenant affected, or null for every tenant. */
  readonly tenant: string | null;
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** A fault as the API shows it. */
export function faultView(fault: Fault) {
  return {
    id: fault.id,
    component: fault.component,
    kind: fault.kind,
    ...(fault.latencyMs !== null && { latency_ms: fault.latencyMs }),
    rate: fault.rate,
    ...(fault.tenant !== null && { tenant: fault.tenant }),
    duration_seconds: Math.round((fault.expiresAt - fault.createdAt) / 1000),
    created_at: new Date(fault.createdAt).toISOString(),
    expires_at: new Date(fault.expiresAt).toISOString(),
  };
}

/**
 * Problems of a fault body beyond its schema: `latency_ms` belongs to `latency` faults and is
 * required by them. Empty when the body is acceptable.
 */
export function faultProblems(input: FaultInput, path = ''): ErrorDetail[] {
  if (input.kind === 'latency' && input.latency_ms === undefined)
    return [{ path: `${path}latency_ms`, message: 'is required for a latency fault' }];
  if (input.kind !== 'latency' && input.latency_ms !== undefined)
    return [{ path: `${path}latency_ms`, message: 'is only allowed for a latency fault' }];
  return [];
}

/**
 * Parses `VIGIL_FAULTS`: a JSON array of fault bodies. Throws an error naming the setting and
 * every problem, so the node refuses to start on a bad value.
 */
export function parseFaultsSetting(text: string): FaultInput[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`invalid configuration: VIGIL_FAULTS is not JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(parsed))
    throw new Error('invalid configuration: VIGIL_FAULTS must be a JSON array of fault bodies');
  const problems: string[] = [];
  parsed.forEach((item: unknown, index) => {
    const schemaErrors = [...Value.Errors(FaultInput, item)];
    if (schemaErrors.length > 0) {
      for (const error of schemaErrors)
        problems.push(`[${index}]${error.path.replaceAll('/', '.')} ${error.message}`);
      return;
    }
    for (const problem of faultProblems(item as FaultInput, '.'))
      problems.push(`[${index}]${problem.path} ${problem.message}`);
  });
  if (problems.length > 0) throw new Error(`invalid configuration: VIGIL_FAULTS ${problems.join('; ')}`);
  return parsed as FaultInput[];
}

const noFaults: readonly Fault[] = [];

/**
 * The active fault injections of this node, by component.
 *
 * `active` is the one check the hot path makes when nothing is injected. Injections expire by
 * timestamp: expired ones are pruned when a check or a listing comes after their expiry, so there
 * is no timer per injection and none per request.
 */
export class FaultInjector {
  /** False when no injection is held: guarded calls then skip every other check. */
  active = false;
  readonly #byComponent = new Map<Component, Fault[]>();
  /** The earliest expiry among held injections; a check at or after it prunes. */
  #nextExpiry = Number.POSITIVE_INFINITY;
  readonly #now: () => number;
  readonly #random: () => number;

  constructor(options: { now?: () => number; random?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  add(input: FaultInput): Fault {
    const createdAt = this.#now();
    const fault: Fault = {
      id: `flt_${randomBytes(9).toString('base64url').replaceAll(/[-_]/g, 'x')}`,
      component: input.component,
      kind: input.kind,
      latencyMs: input.kind === 'latency' ? (input.latency_ms ?? null) : null,
      rate: input.rate ?? 1,
      tenant: input.tenant ?? null,
      createdAt,
      expiresAt: createdAt + input.duration_seconds * 1000,
    };
    let faults = this.#byComponent.get(fault.component);
    if (faults === undefined) {
      faults = [];
      this.#byComponent.set(fault.component, faults);
    }
    faults.push(fault);
    this.#nextExpiry = Math.min(this.#nextExpiry, fault.expiresAt);
    this.active = true;
    return fault;
  }

  /** Ends an injection; undefined when it is unknown or already expired. */
  remove(id: string): Fault | undefined {
    this.#prune(this.#now());
    for (const faults of this.#byComponent.values()) {
      const index = faults.findIndex((fault) => fault.id === id);
      if (index >= 0) {
        const [removed] = faults.splice(index, 1);
        this.#prune(this.#now());
        return removed;
      }
    }
    return undefined;
  }

  /** Active injections, oldest first. */
  list(): Fault[] {
    this.#prune(this.#now());
    return [...this.#byComponent.values()].flat().sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Active injections of one component (any tenant). */
  count(component: Component): number {
    this.#prune(this.#now());
    return this.#byComponent.get(component)?.length ?? 0;
  }

  /**
   * The injection that applies to this call of `component` for `tenantId` (null when the call
   * belongs to no tenant: only global injections apply), or undefined. An injection with `rate`
   * below 1 applies to that share of calls, drawn per call.
   */
  check(component: Component, tenantId: string | null): Fault | undefined {
    if (!this.active) return undefined;
    if (this.#now() >= this.#nextExpiry) this.#prune(this.#now());
    const faults = this.#byComponent.get(component) ?? noFaults;
    for (let index = 0; index < faults.length; index++) {
      const fault = faults[index] as Fault;
      if (fault.tenant !== null && fault.tenant !== tenantId) continue;
      if (fault.rate >= 1 || this.#random() < fault.rate) return fault;
    }
    return undefined;
  }

  #prune(now: number): void {
    if (!this.active) return;
    let next = Number.POSITIVE_INFINITY;
    let held = 0;
    for (const [component, faults] of this.#byComponent) {
      const live = faults.filter((fault) => fault.expiresAt > now);
      if (live.length !== faults.length) this.#byComponent.set(component, live);
      for (const fault of live) next = Math.min(next, fault.expiresAt);
      held += live.length;
    }
    this.#nextExpiry = next;
    this.active = held > 0;
  }
}
