import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { ConfigStore } from '@vigil/engine';
import { FaultInput, faultView } from '../resilience/faults.js';
import type { Resilience } from '../resilience/resilience.js';
import { actorOf } from './request-auth.js';
import { controlResponses } from './responses.js';

export interface ResilienceRouteOptions {
  resilience: Resilience;
  /** The config store without fault injection, for the audit entries of drills. */
  auditStore: ConfigStore;
  tenantExists: (tenantId: string) => boolean;
}

/**
 * Operator routes for drills and health, under `/v1/admin` (admin token): fault injections
 * (`/faults`) and the components' breakers and event-loop delay (`/health`).
 */
export const resilienceRoutes: FastifyPluginAsyncTypebox<ResilienceRouteOptions> = async (
  app,
  { resilience, auditStore, tenantExists },
) => {
  app.post(
    '/faults',
    {
      schema: {
        summary:
          'Inject latency, errors or an outage into a component, globally or for one tenant, for a while',
        tags: ['admin'],
        body: FaultInput,
        response: controlResponses,
      },
    },
    async (request, reply) => {
      const fault = await resilience.addFault(auditStore, actorOf(request), request.body, tenantExists);
      reply.code(201);
      return faultView(fault);
    },
  );

  app.get(
    '/faults',
    { schema: { summary: 'Active fault injections', tags: ['admin'], response: controlResponses } },
    async () => ({ faults: resilience.injector.list().map(faultView) }),
  );

  app.delete(
    '/faults/:id',
    {
      schema: {
        summary: 'End a fault injection',
        tags: ['admin'],
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: controlResponses,
      },
    },
    async (request, reply) => {
      await resilience.removeFault(auditStore, actorOf(request), request.params.id);
      reply.code(204);
    },
  );

  app.get(
    '/health',
    {
      schema: {
        summary: "Components' circuit breakers, active faults and the event-loop delay",
        tags: ['admin'],
        response: controlResponses,
      },
    },
    async () => resilience.health(),
  );
};
