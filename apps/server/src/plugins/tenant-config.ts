import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { ConfigStore, DecisionLog, DecisionRecord } from '@vigil/engine';
import { EventTypeSchema, Identifier, KeyInput, literalUnion, VigilError, verdicts } from '@vigil/protocol';
import type { FastifyRequest } from 'fastify';
import { type ControlPlane, eventTypeView, keyView } from '../control-plane.js';
import { actorOf } from './request-auth.js';
import { controlResponses, errorResponses } from './responses.js';

export interface TenantConfigOptions {
  control: ControlPlane;
  log: DecisionLog;
  store: ConfigStore;
  /** Which tenant a request acts on: the `:tenant` parameter for admins, the key's tenant for `/v1/manage`. */
  tenantOf: (request: FastifyRequest) => string;
  tag: string;
}

const Timestamp = Type.String({ format: 'date-time' });

/**
 * A tenant's configuration and data routes. Registered twice: under `/v1/admin/tenants/:tenant`
 * for platform operators and under `/v1/manage` for the tenant's own `manage` keys.
 */
export const tenantConfig: FastifyPluginAsyncTypebox<TenantConfigOptions> = async (app, options) => {
  const { control, log, tenantOf, tag } = options;
  const tenant = (request: FastifyRequest) => control.tenant(tenantOf(request)).id;

  app.post(
    '/keys',
    {
      config: { bodyErrorCode: 'invalid_config' },
      schema: {
        summary: 'Create an API key; the secret is shown once',
        tags: [tag],
        body: KeyInput,
        response: {
          201: Type.Object({
            key_id: Type.String(),
            secret: Type.String(),
            api_key: Type.String(),
            scopes: Type.Array(Type.String()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const issued = await control.createKey(actorOf(request), tenant(request), request.body);
      reply.code(201);
      return issued;
    },
  );

  app.get(
    '/keys',
    { schema: { summary: 'List API keys (never their secrets)', tags: [tag], response: controlResponses } },
    async (request) => {
      return { keys: control.keys(tenant(request)).map(keyView) };
    },
  );

  app.delete(
    '/keys/:key_id',
    {
      schema: {
        summary: 'Revoke an API key, effective at once',
        tags: [tag],
        params: Type.Object({ key_id: Type.String({ maxLength: 64 }) }),
        response: controlResponses,
      },
    },
    async (request, reply) => {
      await control.revokeKey(actorOf(request), tenant(request), request.params.key_id);
      reply.code(204);
    },
  );

  app.put(
    '/event-types/:type',
    {
      config: { bodyErrorCode: 'invalid_config' },
      schema: {
        summary: 'Create or replace an event type schema',
        tags: [tag],
        params: Type.Object({ type: Identifier }),
        body: EventTypeSchema,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      const { record, created } = await control.putEventType(
        actorOf(request),
        tenant(request),
        request.params.type,
        request.body,
      );
      reply.code(created ? 201 : 200);
      return eventTypeView(record);
    },
  );

  app.get(
    '/event-types',
    { schema: { summary: 'List event types', tags: [tag], response: controlResponses } },
    async (request) => {
      return { event_types: control.eventTypes(tenant(request)).map(eventTypeView) };
    },
  );

  app.get(
    '/event-types/:type',
    {
      schema: {
        summary: 'Read an event type',
        tags: [tag],
        params: Type.Object({ type: Type.String({ maxLength: 64 }) }),
        response: controlResponses,
      },
    },
    async (request) => eventTypeView(control.eventType(tenant(request), request.params.type)),
  );

  app.get(
    '/decisions',
    {
      schema: {
        summary: 'Search the decision log, newest first',
        tags: [tag],
        querystring: Type.Object(
          {
            entity: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
            verdict: Type.Optional(literalUnion(verdicts)),
            rule: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
            from: Type.Optional(Timestamp),
            to: Type.Optional(Timestamp),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
            cursor: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: controlResponses,
      },
    },
    async (request) => {
      const query = request.query;
      for (const bound of ['from', 'to'] as const) {
        if (query[bound] !== undefined && Number.isNaN(Date.parse(query[bound]))) {
          throw new VigilError('invalid_request', {
            details: [{ path: `querystring.${bound}`, message: 'is not a time' }],
          });
        }
      }
      const page = await log.search({
        tenantId: tenant(request),
        ...(query.entity !== undefined && { entity: query.entity }),
        ...(query.verdict !== undefined && { verdict: query.verdict }),
        ...(query.rule !== undefined && { rule: query.rule }),
        ...(query.from !== undefined && { from: Date.parse(query.from) }),
        ...(query.to !== undefined && { to: Date.parse(query.to) }),
        ...(query.cursor !== undefined && { cursor: query.cursor }),
        limit: query.limit ?? 50,
      });
      return { decisions: page.records.map(summaryOf), next_cursor: page.nextCursor ?? null };
    },
  );

  app.get(
    '/decisions/:id',
    {
      schema: {
        summary: 'One decision with its event and everything the decision saw',
        tags: [tag],
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: controlResponses,
      },
    },
    async (request) => {
      const tenantId = tenant(request);
      const record = await log.get(tenantId, request.params.id);
      if (record === undefined)
        throw new VigilError('not_found', { message: `No decision '${request.params.id}'.` });
      const feedback = await log.listFeedback(tenantId, record.event.id);
      return {
        ...summaryOf(record),
        event: record.event,
        response: record.response,
        features: record.features ?? {},
        shadows: record.shadows ?? [],
        feedback: feedback.map(({ label, source, note, createdAt }) => ({
          label,
          source: source ?? null,
          note: note ?? null,
          at: new Date(createdAt).toISOString(),
        })),
      };
    },
  );

  app.get(
    '/audit',
    {
      schema: {
        summary: "This tenant's configuration changes, newest first",
        tags: [tag],
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            before: Type.Optional(Type.Integer({ minimum: 1 })),
          },
          { additionalProperties: false },
        ),
        response: controlResponses,
      },
    },
    async (request) => {
      const entries = await options.store.listAudit({
        tenantId: tenant(request),
        limit: request.query.limit ?? 100,
        ...(request.query.before !== undefined && { before: request.query.before }),
      });
      return { entries };
    },
  );
};

function summaryOf(record: DecisionRecord) {
  return {
    decision_id: record.decisionId,
    kind: record.kind,
    event_id: record.event.id,
    event_type: record.event.type,
    verdict: record.verdict,
    score: record.response?.score ?? null,
    rules: record.ruleIds,
    policy_version: record.response?.policy_version ?? null,
    created_at: new Date(record.createdAt).toISOString(),
  };
}
