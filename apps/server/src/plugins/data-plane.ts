import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { DecisionLog, DecisionService } from '@vigil/engine';
import {
  DecisionBatchRequest,
  DecisionRequest,
  DecisionResponse,
  ErrorResponse,
  EventBatchRequest,
  FeedbackRequest,
  VigilError,
} from '@vigil/protocol';
import type { AdmissionControl } from '../admission/admission-control.js';
import { type AdmissionMetrics, applyAdmission } from '../admission/admission-hooks.js';
import type { Authenticator } from '../auth.js';
import { toVigilError } from '../error-handler.js';
import { authenticateKey, tenantOf } from './request-auth.js';

export interface DataPlaneOptions {
  decisions: DecisionService;
  log: DecisionLog;
  auth: Authenticator;
  batchBodyLimit: number;
  admission: AdmissionControl;
  admissionMetrics: AdmissionMetrics;
}

const errorResponses = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  413: ErrorResponse,
  415: ErrorResponse,
  422: ErrorResponse,
};

/** `POST /v1/decisions`, `/v1/decisions/batch`, `/v1/events`, `/v1/feedback`: keys with the `decide` scope. */
export const dataPlane: FastifyPluginAsyncTypebox<DataPlaneOptions> = async (app, options) => {
  authenticateKey(app, options.auth, 'decide');
  // After authentication, so the tenant is known: quotas and overload shedding of every route here.
  applyAdmission(app, options.admission, options.admissionMetrics);

  app.post(
    '/v1/decisions',
    {
      config: { bodyErrorCode: 'invalid_event' },
      schema: {
        summary: 'Decide on one event',
        tags: ['data plane'],
        body: DecisionRequest,
        response: { 200: DecisionResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      // The caller's deadline counts from the request's arrival: Fastify starts `elapsedTime`
      // when it routes the request, before the hooks and the body (both on `performance.now()`).
      const arrivedAt = performance.now() - reply.elapsedTime;
      const outcome = await options.decisions.decide(tenantOf(request), request.body, arrivedAt);
      if (outcome.replayed) reply.header('idempotent-replay', 'true');
      // The answer's JSON as the service made it (and the log stored it): Fastify sends a string
      // with a JSON content type as it is, without the response schema's serialiser. The schema
      // still documents the body; its type says object, hence the cast.
      return reply
        .type('application/json; charset=utf-8')
        .send(outcome.json as unknown as Static<typeof DecisionResponse>);
    },
  );

  app.post(
    '/v1/decisions/batch',
    {
      bodyLimit: options.batchBodyLimit,
      config: { bodyErrorCode: 'invalid_event' },
      schema: {
        summary: 'Decide on up to 1,000 events, one decision each, in order',
        tags: ['data plane'],
        body: Type.Object(
          {
            ...DecisionBatchRequest.properties,
            events: Type.Array(DecisionRequest, { minItems: 1, maxItems: 1000 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ decisions: Type.Array(Type.Any()) }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantOf(request);
      const arrivedAt = performance.now() - reply.elapsedTime;
      const timeout = request.body.timeout_ms;
      const decisions = await Promise.all(
        request.body.events.map(async (event) => {
          try {
            const input =
              timeout !== undefined && event.timeout_ms === undefined
                ? { ...event, timeout_ms: timeout }
                : event;
            return (await options.decisions.decide(tenantId, input, arrivedAt)).response;
          } catch (error) {
            return { event_id: event.id, ...toVigilError(error, request).toBody() };
          }
        }),
      );
      return { decisions };
    },
  );

  app.post(
    '/v1/events',
    {
      bodyLimit: options.batchBodyLimit,
      config: { bodyErrorCode: 'invalid_event' },
      schema: {
        summary: 'Report events that need no decision (they update features); up to 1,000 at once',
        tags: ['data plane'],
        body: Type.Object(
          { events: Type.Array(EventBatchRequest.properties.events.items, { minItems: 1, maxItems: 1000 }) },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({
            accepted: Type.Integer(),
            duplicates: Type.Integer(),
            rejected: Type.Integer(),
            results: Type.Array(Type.Any()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const tenantId = tenantOf(request);
      const results = await Promise.all(
        request.body.events.map(async (event) => {
          try {
            return await options.decisions.report(tenantId, event);
          } catch (error) {
            return {
              event_id: event.id,
              status: 'rejected' as const,
              ...toVigilError(error, request).toBody(),
            };
          }
        }),
      );
      const count = (status: string) => results.filter((result) => result.status === status).length;
      reply.code(202);
      return {
        accepted: count('accepted'),
        duplicates: count('duplicate'),
        rejected: count('rejected'),
        results,
      };
    },
  );

  app.post(
    '/v1/feedback',
    {
      schema: {
        summary: 'Label a past event as fraud or legit',
        tags: ['data plane'],
        body: FeedbackRequest,
        response: {
          202: Type.Object({ event_id: Type.String(), label: Type.String() }),
          404: ErrorResponse,
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const tenantId = tenantOf(request);
      const since = 0;
      const known =
        (await options.log.findByEventId(tenantId, request.body.event_id, since, 'decision')) ??
        (await options.log.findByEventId(tenantId, request.body.event_id, since, 'event'));
      if (known === undefined) throw new VigilError('event_not_found');
      await options.log.addFeedback({ ...request.body, tenantId, createdAt: Date.now() });
      reply.code(202);
      return { event_id: request.body.event_id, label: request.body.label };
    },
  );
};
