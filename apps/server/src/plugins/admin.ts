import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { ConfigStore } from '@vigil/engine';
import { TenantInput, TenantPatch } from '@vigil/protocol';
import { type ControlPlane, tenantView } from '../control-plane.js';
import { actorOf } from './request-auth.js';
import { controlResponses } from './responses.js';

export interface AdminOptions {
  control: ControlPlane;
  store: ConfigStore;
  registry: { tenants(): ReturnType<ControlPlane['tenant']>[] };
}

const TenantParams = Type.Object({ tenant: Type.String({ maxLength: 64 }) });

/** Platform operator routes: tenants and the global audit trail. Admin token only. */
export const admin: FastifyPluginAsyncTypebox<AdminOptions> = async (app, { control, store, registry }) => {
  app.post(
    '/tenants',
    {
      config: { bodyErrorCode: 'invalid_config' },
      schema: { summary: 'Create a tenant', tags: ['admin'], body: TenantInput, response: controlResponses },
    },
    async (request, reply) => {
      reply.code(201);
      return tenantView(await control.createTenant(actorOf(request), request.body));
    },
  );

  app.get(
    '/tenants',
    { schema: { summary: 'List tenants', tags: ['admin'], response: controlResponses } },
    async () => ({
      tenants: registry.tenants().map(tenantView),
    }),
  );

  app.get(
    '/tenants/:tenant',
    {
      schema: { summary: 'Read a tenant', tags: ['admin'], params: TenantParams, response: controlResponses },
    },
    async (request) => tenantView(control.tenant(request.params.tenant)),
  );

  app.patch(
    '/tenants/:tenant',
    {
      config: { bodyErrorCode: 'invalid_config' },
      schema: {
        summary: 'Change a tenant',
        tags: ['admin'],
        params: TenantParams,
        body: TenantPatch,
        response: controlResponses,
      },
    },
    async (request) =>
      tenantView(await control.updateTenant(actorOf(request), request.params.tenant, request.body)),
  );

  app.delete(
    '/tenants/:tenant',
    {
      schema: {
        summary: 'Delete a tenant with its keys, configuration and data',
        tags: ['admin'],
        params: TenantParams,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      await control.deleteTenant(actorOf(request), request.params.tenant);
      reply.code(204);
    },
  );

  app.get(
    '/audit',
    {
      schema: {
        summary: 'Who changed what, when, newest first',
        tags: ['admin'],
        querystring: Type.Object(
          {
            tenant: Type.Optional(Type.String({ maxLength: 64 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            before: Type.Optional(Type.Integer({ minimum: 1 })),
          },
          { additionalProperties: false },
        ),
        response: controlResponses,
      },
    },
    async (request) => ({
      entries: await store.listAudit({
        limit: request.query.limit ?? 100,
        ...(request.query.tenant !== undefined && { tenantId: request.query.tenant }),
        ...(request.query.before !== undefined && { before: request.query.before }),
      }),
    }),
  );
};
