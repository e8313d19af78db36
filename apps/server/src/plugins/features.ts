import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { FeatureInput, Identifier } from '@vigil/protocol';
import type { FastifyRequest } from 'fastify';
import type { FeatureControl } from '../feature-control.js';
import { actorOf } from './request-auth.js';
import { controlResponses } from './responses.js';

export interface FeaturesOptions {
  features: FeatureControl;
  tenantOf: (request: FastifyRequest) => string;
  tag: string;
}

const NameParams = Type.Object({ name: Identifier });

/** Feature definitions (SPEC §4): create or replace, read, list, delete. */
export const features: FastifyPluginAsyncTypebox<FeaturesOptions> = async (app, options) => {
  const { features: control, tag } = options;

  app.put(
    '/features/:name',
    {
      config: { bodyErrorCode: 'invalid_config' },
      schema: {
        summary: 'Create or replace a feature; a new definition is computed from stored history',
        tags: [tag],
        params: NameParams,
        body: FeatureInput,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      const { record, created } = await control.put(
        actorOf(request),
        options.tenantOf(request),
        request.params.name,
        request.body,
      );
      reply.code(created ? 201 : 200);
      return control.view(record);
    },
  );

  app.get(
    '/features',
    { schema: { summary: 'List features', tags: [tag], response: controlResponses } },
    async (request) => ({ features: control.list(options.tenantOf(request)) }),
  );

  app.get(
    '/features/:name',
    {
      schema: {
        summary: 'Read a feature and its backfill status',
        tags: [tag],
        params: NameParams,
        response: controlResponses,
      },
    },
    async (request) => control.get(options.tenantOf(request), request.params.name),
  );

  app.delete(
    '/features/:name',
    {
      schema: {
        summary: 'Delete a feature; refused (409) while a serving policy uses it',
        tags: [tag],
        params: NameParams,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      await control.delete(actorOf(request), options.tenantOf(request), request.params.name);
      reply.code(204);
    },
  );
};
