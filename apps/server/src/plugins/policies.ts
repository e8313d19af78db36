import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { PolicyState, PolicyVersionRecord } from '@vigil/engine';
import { EventInput, Identifier, PolicyInput } from '@vigil/protocol';
import type { FastifyRequest } from 'fastify';
import type { ControlPlane } from '../control-plane.js';
import { actorOf } from './request-auth.js';
import { controlResponses } from './responses.js';

export interface PoliciesOptions {
  control: ControlPlane;
  tenantOf: (request: FastifyRequest) => string;
  tag: string;
  batchBodyLimit: number;
}

const TypeParams = Type.Object({ type: Identifier });
const VersionParams = Type.Object({ type: Identifier, version: Type.Integer({ minimum: 1 }) });

export function versionView(record: PolicyVersionRecord, state: PolicyState) {
  const status =
    state.published === record.version
      ? 'published'
      : state.canary?.version === record.version
        ? 'canary'
        : state.shadows.includes(record.version)
          ? 'shadow'
          : state.history.includes(record.version)
            ? 'retired'
            : 'draft';
  return {
    version: record.version,
    status,
    created_at: record.createdAt,
    created_by: record.createdBy,
    ...record.policy,
  };
}

export function stateView(state: PolicyState) {
  return {
    event_type: state.eventType,
    published: state.published,
    canary: state.canary,
    shadows: state.shadows,
    history: state.history,
    updated_at: state.updatedAt,
  };
}

/** Policy versions and their lifecycle: draft, publish (with canary), shadow, rollback, test. */
export const policies: FastifyPluginAsyncTypebox<PoliciesOptions> = async (app, options) => {
  const { control, tag } = options;
  const tenant = (request: FastifyRequest) => control.tenant(options.tenantOf(request)).id;

  // A route with an optional body (publish, shadow, rollback) validates an absent one as `{}`.
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.body === undefined && request.routeOptions.config.optionalBody === true) request.body = {};
    done();
  });

  app.post(
    '/policies/:type/versions',
    {
      config: { bodyErrorCode: 'invalid_config' },
      schema: {
        summary: 'Save a new draft version; 422 invalid_policy lists every compile error',
        tags: [tag],
        params: TypeParams,
        body: PolicyInput,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      const tenantId = tenant(request);
      const record = await control.createPolicyVersion(
        actorOf(request),
        tenantId,
        request.params.type,
        request.body,
      );
      reply.code(201);
      return { version: record.version };
    },
  );

  app.get(
    '/policies/:type/versions',
    {
      schema: {
        summary: 'List versions with their status',
        tags: [tag],
        params: TypeParams,
        response: controlResponses,
      },
    },
    async (request) => {
      const tenantId = tenant(request);
      const state = control.policyState(tenantId, request.params.type);
      return {
        state: stateView(state),
        versions: control
          .policyVersions(tenantId, request.params.type)
          .map((record) => versionView(record, state)),
      };
    },
  );

  app.get(
    '/policies/:type/versions/:version',
    {
      schema: { summary: 'Read one version', tags: [tag], params: VersionParams, response: controlResponses },
    },
    async (request) => {
      const tenantId = tenant(request);
      const state = control.policyState(tenantId, request.params.type);
      return versionView(control.policyVersion(tenantId, request.params.type, request.params.version), state);
    },
  );

  app.get(
    '/policies/:type',
    {
      schema: {
        summary: 'Which versions serve: published, canary, shadows',
        tags: [tag],
        params: TypeParams,
        response: controlResponses,
      },
    },
    async (request) => stateView(control.policyState(tenant(request), request.params.type)),
  );

  app.post(
    '/policies/:type/versions/:version/publish',
    {
      config: { bodyErrorCode: 'invalid_config', optionalBody: true },
      schema: {
        summary: 'Publish a version, optionally as a canary for a share of traffic',
        tags: [tag],
        params: VersionParams,
        body: Type.Object(
          { canary_percent: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })) },
          { additionalProperties: false },
        ),
        response: controlResponses,
      },
    },
    async (request) => {
      const state = await control.publish(
        actorOf(request),
        tenant(request),
        request.params.type,
        request.params.version,
        request.body.canary_percent,
      );
      return stateView(state);
    },
  );

  app.post(
    '/policies/:type/versions/:version/shadow',
    {
      config: { bodyErrorCode: 'invalid_config', optionalBody: true },
      schema: {
        summary: 'Run a version in shadow on live traffic (or stop, with enabled: false)',
        tags: [tag],
        params: VersionParams,
        body: Type.Object({ enabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        response: controlResponses,
      },
    },
    async (request) => {
      const enabled = request.body.enabled ?? true;
      const state = await control.setShadow(
        actorOf(request),
        tenant(request),
        request.params.type,
        request.params.version,
        enabled,
      );
      return stateView(state);
    },
  );

  app.post(
    '/policies/:type/rollback',
    {
      config: { optionalBody: true },
      schema: {
        summary: 'Back to the previously published version',
        tags: [tag],
        params: TypeParams,
        response: controlResponses,
      },
    },
    async (request) =>
      stateView(await control.rollback(actorOf(request), tenant(request), request.params.type)),
  );

  app.post(
    '/policies/:type/test',
    {
      bodyLimit: options.batchBodyLimit,
      config: { bodyErrorCode: 'invalid_config' },
      schema: {
        summary: 'Evaluate a draft policy on sample events; nothing is stored or counted',
        tags: [tag],
        params: TypeParams,
        body: Type.Object(
          { policy: PolicyInput, events: Type.Array(EventInput, { minItems: 1, maxItems: 1000 }) },
          { additionalProperties: false },
        ),
        response: controlResponses,
      },
    },
    async (request) => ({
      results: control.testPolicy(
        tenant(request),
        request.params.type,
        request.body.policy,
        request.body.events,
      ),
    }),
  );
};
