// The baseline for `bench/run.mjs`: a bare Fastify 5 server with the route and body of a Vigil
// decision, and nothing else (no schema, no auth, no logger). Everything Vigil costs beyond this
// server is Vigil's own cost.
import Fastify from 'fastify';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';

const app = Fastify({ logger: false });

app.get('/readyz', async () => ({ status: 'ready' }));

// Same body (Fastify's default JSON parser), a reply of the same shape as a Vigil decision.
app.post('/v1/decisions', async (request) => ({
  decision_id: '00000000-0000-4000-8000-000000000000',
  event_id: request.body.id,
  verdict: 'accept',
  score: 0,
  rules: [],
  tags: [],
  policy_version: null,
  degraded: [],
  errors: [],
  latency_ms: 0,
}));

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

await app.listen({ port, host });
