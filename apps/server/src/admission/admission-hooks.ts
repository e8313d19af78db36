import { randomUUID } from 'node:crypto';
import { type DecisionResponse, type ErrorCode, type Verdict, VigilError } from '@vigil/protocol';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  RouteOptions,
} from 'fastify';
import { Admission, type AdmissionControl, type TenantQuota } from './admission-control.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant quota whose concurrency slot this request holds; null when it holds none. */
    admissionSlot: TenantQuota | null;
    /** The node shed this request and it is answered with its tenant's overload fallback. */
    admissionShed: boolean;
    /** The client went away (`onRequestAbort`); a late admission gives its slot straight back. */
    admissionAborted: boolean;
  }
}

/** Where admission outcomes are counted (`NodeMetrics`). */
export interface AdmissionMetrics {
  /** A request refused with 429 or 503 by admission, by the error code. */
  admissionRejected(tenantId: string, reason: ErrorCode): void;
  /** A request shed by the node limit: answered with the tenant's fallback, or rejected with 503. */
  shed(tenantId: string, outcome: 'fallback' | 'rejected'): void;
}

/** How a route is admitted. */
interface RouteKind {
  /** A batch: one slot, as many tokens as events, charged once the body is read. */
  batch: boolean;
  /** What a fail-open tenant's shed request is answered with; null: 503. */
  fallback: ((request: FastifyRequest, reply: FastifyReply, verdict: Verdict) => unknown) | null;
  /** Its latency feeds the node's adaptive limit. */
  sampled: boolean;
}

const singleDecision: RouteKind = {
  batch: false,
  sampled: true,
  fallback: (request, reply, verdict) =>
    shedDecision((request.body as { id: string }).id, verdict, reply.elapsedTime),
};
const decisionBatch: RouteKind = {
  batch: true,
  sampled: false,
  fallback: (request, reply, verdict) => ({
    decisions: (request.body as { events: { id: string }[] }).events.map((event) =>
      shedDecision(event.id, verdict, reply.elapsedTime),
    ),
  }),
};
const eventBatch: RouteKind = { batch: true, sampled: false, fallback: null };
/** Any other route of the scope (`/v1/feedback`): one token, one slot, 503 when shed. */
const otherRoute: RouteKind = { batch: false, sampled: false, fallback: null };

const routeKinds: Record<string, RouteKind> = {
  '/v1/decisions': singleDecision,
  '/v1/decisions/batch': decisionBatch,
  '/v1/events': eventBatch,
};

/**
 * The decision a shed request of a fail-open tenant gets: the tenant's verdict, marked `shed`,
 * with a fresh id. It is not logged and not remembered for idempotency, so a retry with the same
 * event id is decided normally.
 */
function shedDecision(eventId: string, verdict: Verdict, elapsedMs: number): DecisionResponse {
  return {
    decision_id: randomUUID(),
    event_id: eventId,
    verdict,
    score: 0,
    rules: [],
    tags: [],
    policy_version: null,
    degraded: ['shed'],
    errors: [],
    latency_ms: Math.round(elapsedMs * 1000) / 1000,
  };
}

/** Error bodies serialised once: a refusal must cost next to nothing. */
const errorBodies = {
  rate_limited: JSON.stringify(new VigilError('rate_limited').toBody()),
  too_many_concurrent: JSON.stringify(new VigilError('too_many_concurrent').toBody()),
  overloaded: JSON.stringify(new VigilError('overloaded').toBody()),
};
type AdmissionCode = keyof typeof errorBodies;

/**
 * Applies admission control to every route of `app` (the data-plane plugin), after its key
 * authentication: call it right after `authenticateKey`. A bearer request is admitted in `onRequest`
 * before its body is read; a signed one in `preValidation`, once its signature is checked. The
 * hooks are attached per route (through `onRoute`), so the route's kind is known without a lookup
 * per request. A held slot is released exactly once: in `onResponse`, or in `onRequestAbort` when
 * the client goes away first (Fastify runs no `onResponse` then).
 */
export function applyAdmission(
  app: FastifyInstance,
  control: AdmissionControl,
  metrics: AdmissionMetrics,
): void {
  app.decorateRequest('admissionSlot', null);
  app.decorateRequest('admissionShed', false);
  app.decorateRequest('admissionAborted', false);

  const reject = (reply: FastifyReply, quota: TenantQuota, code: AdmissionCode, retryAfter: number) => {
    metrics.admissionRejected(quota.tenantId, code);
    reply
      .code(code === 'overloaded' ? 503 : 429)
      .header('retry-after', String(retryAfter))
      .type('application/json; charset=utf-8')
      .send(errorBodies[code]);
  };

  /**
   * Runs admission for a request whose tenant is known; false if it was answered. A promise when
   * the tenant's shared rate limit waits for a lease (docs/SCALE-OUT.md, "Rate limits").
   */
  const admit = (
    request: FastifyRequest,
    reply: FastifyReply,
    kind: RouteKind,
  ): boolean | Promise<boolean> => {
    const principal = request.principal;
    if (principal?.kind !== 'key') return true; // authentication answers it
    const quota = control.quota(principal.tenantId);
    const outcome = control.admit(quota, kind.batch ? 0 : 1);
    if (typeof outcome === 'object')
      return outcome.then((late) => decided(request, reply, kind, quota, late));
    return decided(request, reply, kind, quota, outcome);
  };

  /** Acts on an admission outcome; false if the request was answered. */
  const decided = (
    request: FastifyRequest,
    reply: FastifyReply,
    kind: RouteKind,
    quota: TenantQuota,
    outcome: Admission,
  ): boolean => {
    if (outcome === Admission.admitted) {
      request.admissionSlot = quota;
      return true;
    }
    if (outcome === Admission.rateLimited) {
      reject(reply, quota, 'rate_limited', quota.retryAfterSeconds);
    } else if (outcome === Admission.tooManyConcurrent) {
      reject(reply, quota, 'too_many_concurrent', 1);
    } else if (kind.fallback !== null && control.fallbackVerdict(quota) !== null) {
      // Answered in preHandler, once the body is read and valid, without holding a slot.
      request.admissionShed = true;
      return true;
    } else {
      metrics.shed(quota.tenantId, 'rejected');
      reject(reply, quota, 'overloaded', 1);
    }
    return false;
  };

  /** Continues the request once admission let it through; it was answered otherwise. */
  const proceed = (
    admitted: boolean | Promise<boolean>,
    request: FastifyRequest,
    done: HookHandlerDoneFunction,
  ) => {
    if (admitted === true) done();
    else if (admitted !== false)
      admitted.then(
        (late) => {
          // A client gone while its request waited for a lease: its slot, if any, is given back.
          if (request.admissionAborted) release(request);
          else if (late) done();
        },
        (error: unknown) => done(error as Error),
      );
  };

  const release = (request: FastifyRequest) => {
    const quota = request.admissionSlot;
    if (quota === null) return;
    request.admissionSlot = null;
    control.release(quota);
  };

  const hooksOf = (kind: RouteKind) => ({
    onRequest(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      proceed(admit(request, reply, kind), request, done);
    },
    preValidation(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      if (request.admissionSlot !== null || request.admissionShed) done();
      else proceed(admit(request, reply, kind), request, done);
    },
    preHandler(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      if (request.admissionShed) {
        const quota = control.quota((request.principal as { tenantId: string }).tenantId);
        const verdict = control.fallbackVerdict(quota);
        // The fallback may have been removed since this request was shed.
        if (verdict === null || kind.fallback === null) {
          metrics.shed(quota.tenantId, 'rejected');
          reject(reply, quota, 'overloaded', 1);
        } else {
          metrics.shed(quota.tenantId, 'fallback');
          reply.send(kind.fallback(request, reply, verdict));
        }
        return;
      }
      const quota = request.admissionSlot;
      if (kind.batch && quota !== null) {
        const events = (request.body as { events: unknown[] }).events.length;
        const charged = control.charge(quota, events);
        const charge = (enough: boolean) => {
          if (enough) return true;
          reject(reply, quota, 'rate_limited', quota.retryAfterSeconds);
          return false;
        };
        proceed(typeof charged === 'object' ? charged.then(charge) : charge(charged), request, done);
        return;
      }
      done();
    },
    onResponse(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      if (kind.sampled && request.admissionSlot !== null && reply.statusCode < 300) {
        control.limiter.sample(reply.elapsedTime, control.inflight);
      }
      release(request);
      done();
    },
    onRequestAbort(request: FastifyRequest, done: HookHandlerDoneFunction) {
      request.admissionAborted = true;
      release(request);
      done();
    },
  });
  const hooks = new Map<RouteKind, ReturnType<typeof hooksOf>>();
  for (const kind of [singleDecision, decisionBatch, eventBatch, otherRoute]) hooks.set(kind, hooksOf(kind));
  const hookNames = ['onRequest', 'preValidation', 'preHandler', 'onResponse', 'onRequestAbort'] as const;

  app.addHook('onRoute', (route: RouteOptions) => {
    const kind = routeKinds[route.url] ?? otherRoute;
    const kindHooks = hooks.get(kind) as ReturnType<typeof hooksOf>;
    for (const name of hookNames) {
      // Only batches (charged once read) and fail-open routes (answered once read) need a preHandler.
      if (name === 'preHandler' && !kind.batch && kind.fallback === null) continue;
      const existing = route[name];
      const own = kindHooks[name];
      (route as unknown as Record<string, unknown>)[name] =
        existing === undefined ? [own] : [...(Array.isArray(existing) ? existing : [existing]), own];
    }
  });
}
