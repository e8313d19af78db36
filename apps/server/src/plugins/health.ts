import type { FastifyPluginAsync } from 'fastify';
import type { NodeMetrics } from '../metrics.js';

export interface HealthOptions {
  metrics: NodeMetrics;
  /** Ready to take traffic: started, warmed, and not draining. */
  ready: () => boolean;
}

/** `/healthz` (alive), `/readyz` (ready for traffic), `/metrics` (Prometheus). No credentials. */
export const health: FastifyPluginAsync<HealthOptions> = async (app, { metrics, ready }) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    if (ready()) return { status: 'ready' };
    reply.code(503).header('retry-after', '1');
    return { status: 'not_ready' };
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
