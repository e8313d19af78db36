import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { listKinds, listValueTypes } from '@vigil/engine';
import { Identifier, literalUnion } from '@vigil/protocol';
import type { FastifyRequest } from 'fastify';
import { csvLine, type ListAdmin, parseCsvEntries, parseJsonEntries } from '../list-admin.js';
import { actorOf } from './request-auth.js';
import { controlResponses } from './responses.js';

export interface ListsOptions {
  lists: ListAdmin;
  tenantOf: (request: FastifyRequest) => string;
  tag: string;
  /** Largest body of an entries import, counted after decompression. */
  importBodyLimit: number;
}

const NameParams = Type.Object({ name: Identifier });
const EntryParams = Type.Object({ name: Identifier, value: Type.String({ minLength: 1, maxLength: 512 }) });

/**
 * Block, allow and watch lists (SPEC §4). Registered twice, like `policies`: under
 * `/v1/admin/tenants/:tenant` and under `/v1/manage`.
 */
export const lists: FastifyPluginAsyncTypebox<ListsOptions> = async (app, options) => {
  const { lists: admin, tag } = options;

  // CSV imports; scoped to this plugin, so every other route still answers 415 to text/csv.
  app.addContentTypeParser(
    'text/csv',
    { parseAs: 'buffer', bodyLimit: options.importBodyLimit },
    (request, body, done) => {
      request.rawBody = body as Buffer;
      done(null, (body as Buffer).toString('utf8'));
    },
  );

  app.put(
    '/lists/:name',
    {
      config: { bodyErrorCode: 'invalid_config' },
      schema: {
        summary: 'Create or change a list `{ kind, type, description }`',
        tags: [tag],
        params: NameParams,
        body: Type.Object(
          {
            kind: literalUnion([...listKinds]),
            type: Type.Optional(literalUnion([...listValueTypes])),
            description: Type.Optional(Type.String({ maxLength: 1024 })),
          },
          { additionalProperties: false },
        ),
        response: controlResponses,
      },
    },
    async (request, reply) => {
      const { view, created } = await admin.put(
        actorOf(request),
        options.tenantOf(request),
        request.params.name,
        request.body,
      );
      reply.code(created ? 201 : 200);
      return view;
    },
  );

  app.get(
    '/lists',
    { schema: { summary: "The tenant's lists", tags: [tag], response: controlResponses } },
    async (request) => ({ lists: await admin.all(options.tenantOf(request)) }),
  );

  app.get(
    '/lists/:name',
    {
      schema: {
        summary: 'One list and its entry count',
        tags: [tag],
        params: NameParams,
        response: controlResponses,
      },
    },
    async (request) => admin.view(options.tenantOf(request), request.params.name),
  );

  app.delete(
    '/lists/:name',
    {
      schema: {
        summary: 'Delete a list and its entries; refused while a serving policy uses it',
        tags: [tag],
        params: NameParams,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      await admin.delete(actorOf(request), options.tenantOf(request), request.params.name);
      reply.code(204);
      return null;
    },
  );

  app.post(
    '/lists/:name/entries',
    {
      bodyLimit: options.importBodyLimit,
      schema: {
        summary:
          'Add or update entries: a JSON array `[{ value, ttl_seconds, note }]` or `text/csv` lines `value,ttl_seconds,note`; every refused entry is listed',
        tags: [tag],
        params: NameParams,
        response: controlResponses,
      },
    },
    async (request) => {
      const parsed =
        typeof request.body === 'string' ? parseCsvEntries(request.body) : parseJsonEntries(request.body);
      return admin.addEntries(actorOf(request), options.tenantOf(request), request.params.name, parsed);
    },
  );

  app.delete(
    '/lists/:name/entries/:value',
    {
      schema: {
        summary: 'Remove one entry; the value is URL-encoded (`198.51.100.0%2F24`)',
        tags: [tag],
        params: EntryParams,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      await admin.deleteEntry(
        actorOf(request),
        options.tenantOf(request),
        request.params.name,
        request.params.value,
      );
      reply.code(204);
      return null;
    },
  );

  app.get(
    '/lists/:name/entries',
    {
      schema: {
        summary: 'Export live entries in value order, as JSON pages or CSV (`vigil-next-cursor` header)',
        tags: [tag],
        params: NameParams,
        querystring: Type.Object(
          {
            format: Type.Optional(literalUnion(['json', 'csv'])),
            cursor: Type.Optional(Type.String({ maxLength: 2048 })),
            limit: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
          },
          { additionalProperties: false },
        ),
        response: controlResponses,
      },
    },
    async (request, reply) => {
      const { format, cursor, limit } = request.query;
      const page = await admin.export(options.tenantOf(request), request.params.name, {
        ...(cursor !== undefined && { cursor }),
        limit,
      });
      if (format !== 'csv') return page;
      if (page.next_cursor !== null) reply.header('vigil-next-cursor', page.next_cursor);
      reply.type('text/csv; charset=utf-8');
      return `value,ttl_seconds,note\n${page.entries.map(csvLine).join('')}`;
    },
  );
};
