import { setTimeout as sleep } from 'node:timers/promises';
import { VigilError } from '@vigil/protocol';
import { type CircuitBreaker, refused } from './breakers.js';
import type { Component, Fault, FaultInjector } from './faults.js';

/** A guarded call that was not made, or failed by injection; names its component. */
export function componentUnavailable(component: Component, reason: string): VigilError {
  return new VigilError('component_unavailable', {
    message: `${component} is unavailable: ${reason}`,
    context: { component },
    retryable: true,
  });
}

function injectedFailure(fault: Fault): VigilError {
  const scope = fault.tenant === null ? '' : ` for tenant ${fault.tenant}`;
  return componentUnavailable(
    fault.component,
    fault.kind === 'outage'
      ? `injected outage${scope} (${fault.id})`
      : `injected error${scope} (${fault.id})`,
  );
}

/**
 * Fault injection and the circuit breaker of one component, applied around each call to it.
 *
 * Order per call: an open breaker refuses at once (the dependency is not called); then an injected
 * fault applies: `latency` waits before the call, `error` and `outage` fail it without calling.
 * Outcomes feed the breaker, except failures injected for one tenant: a drill on one tenant must
 * not open the breaker for every tenant.
 */
export class ComponentGuard {
  /** Failed synchronous calls so far; a stage compares it before and after to name the component. */
  syncFailures = 0;
  /**
   * The tenant a synchronous evaluation works for, for calls whose signature has none
   * (enrichment functions); set around the evaluation by the tracking stage.
   */
  currentTenant: string | null = null;

  constructor(
    readonly component: Component,
    readonly injector: FaultInjector,
    readonly breaker: CircuitBreaker,
  ) {}

  /** True when a call needs no checks at all: nothing is injected and the breaker is closed. */
  get quiet(): boolean {
    return !this.injector.active && this.breaker.closed;
  }

  /** Runs an asynchronous call under the breaker and any injected fault. */
  async run<T>(tenantId: string | null, call: () => Promise<T>): Promise<T> {
    const ticket = this.breaker.acquire();
    if (ticket === refused) throw componentUnavailable(this.component, 'circuit breaker open');
    const fault = this.injector.check(this.component, tenantId);
    if (fault !== undefined) {
      if (fault.kind === 'latency') {
        await sleep(fault.latencyMs ?? 0);
      } else {
        throw this.#injected(ticket, fault);
      }
    }
    let value: T;
    try {
      value = await call();
    } catch (error) {
      this.breaker.failure(ticket, error);
      throw error;
    }
    this.breaker.success(ticket);
    return value;
  }

  /**
   * Admits a synchronous call, which cannot wait: an open breaker, or any injected fault, latency
   * included, makes it fail at once (the caller treats the component as unavailable). Returns the
   * breaker ticket to pass to `succeeded` after the call.
   */
  enterSync(tenantId: string | null): number {
    const ticket = this.breaker.acquire();
    if (ticket === refused) {
      this.syncFailures++;
      throw componentUnavailable(this.component, 'circuit breaker open');
    }
    const fault = this.injector.check(this.component, tenantId);
    if (fault !== undefined) {
      this.syncFailures++;
      if (fault.kind === 'latency') {
        const error = componentUnavailable(
          this.component,
          `injected latency of ${fault.latencyMs} ms cannot be awaited here (${fault.id})`,
        );
        this.#record(ticket, fault, error);
        throw error;
      }
      throw this.#injected(ticket, fault);
    }
    return ticket;
  }

  /**
   * Applies injected faults to a synchronous read that never reaches the dependency (an in-memory
   * index kept by the adapter): any fault makes it fail at once, as in {@link enterSync}, but the
   * breaker neither refuses it nor counts it. The breaker measures the dependency, and a read
   * served from memory says nothing about it; while the dependency is down the index answers.
   */
  checkLocal(tenantId: string | null): void {
    const fault = this.injector.check(this.component, tenantId);
    if (fault === undefined) return;
    this.syncFailures++;
    throw fault.kind === 'latency'
      ? componentUnavailable(
          this.component,
          `injected latency of ${fault.latencyMs} ms cannot be awaited here (${fault.id})`,
        )
      : injectedFailure(fault);
  }

  succeeded(ticket: number): void {
    this.breaker.success(ticket);
  }

  #injected(ticket: number, fault: Fault): VigilError {
    const error = injectedFailure(fault);
    this.#record(ticket, fault, error);
    return error;
  }

  #record(ticket: number, fault: Fault, error: Error): void {
    if (fault.tenant === null) this.breaker.failure(ticket, error);
    else this.breaker.release(ticket);
  }
}
