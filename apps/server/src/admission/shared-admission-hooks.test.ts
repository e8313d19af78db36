import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TenantRecord } from '@vigil/engine';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { AdaptiveLimit } from './adaptive-limit.js';
import { AdmissionControl } from './admission-control.js';
import { applyAdmission } from './admission-hooks.js';
import { type RateLeaseSource, SharedRateLimit } from './shared-rate-limit.js';

// The admission hooks with a shared rate limit whose leases the test answers by hand: requests
// that wait for a lease are admitted or refused when it arrives, and one whose client went away
// meanwhile gives its slot back.

const tenant: TenantRecord = {
  id: 't1',
  name: 'acme',
  rateLimit: { rps: 100, burst: 100 },
  maxConcurrency: null,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
};

/** Leases that wait until the test grants them. */
function manualSource() {
  const pending: { want: number; grant: (granted: number) => void }[] = [];
  const source: RateLeaseSource = {
    take: (_tenant, _rps, _burst, want) =>
      new Promise((resolve) => {
        pending.push({ want, grant: (granted) => resolve({ granted, remaining: 0 }) });
      }),
  };
  return { source, pending };
}

let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function serve(source: RateLeaseSource) {
  /** The limiter's clock: it moves only when the test moves it. */
  const clock = { now: 1_000_000 };
  const control = new AdmissionControl(
    { tenant: (id) => (id === tenant.id ? tenant : undefined) },
    { rps: 0, burst: 0, maxConcurrency: 1000 },
    new AdaptiveLimit({ min: 1000, max: 1000 }),
    () => clock.now,
    undefined,
    new SharedRateLimit({ source, now: () => clock.now }),
  );
  const rejected: string[] = [];
  const aborted: string[] = [];
  const server = Fastify();
  server.addHook('onRequestAbort', (request, done) => {
    aborted.push(request.id);
    done();
  });
  server.decorateRequest('principal', null);
  server.addHook('onRequest', (request, _reply, done) => {
    request.principal = { kind: 'key', tenantId: tenant.id, keyId: 'k1', scopes: ['decide'] };
    done();
  });
  await server.register(async (scope) => {
    applyAdmission(scope, control, {
      admissionRejected: (_tenant, reason) => rejected.push(reason),
      shed: () => {},
    });
    scope.post('/v1/decisions', async () => ({ ok: true }));
    scope.post('/v1/events', async (request) => ({
      events: (request.body as { events: unknown[] }).events.length,
    }));
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  app = server;
  return { control, rejected, aborted, clock, port: (server.server.address() as AddressInfo).port };
}

/**
 * A POST over real HTTP; `abort()` makes the client go away before the answer. With `halfSent`
 * only half the body is sent, so the request stays unread until aborted.
 */
function post(port: number, path: string, body: unknown, halfSent = false) {
  const payload = JSON.stringify(body);
  let abort = () => {};
  const answered = new Promise<{ status: number; retryAfter: string | undefined }>((resolve, reject) => {
    const request = httpRequest(
      {
        port,
        host: '127.0.0.1',
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) },
      },
      (response) => {
        response.resume();
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            retryAfter: response.headers['retry-after'] as string,
          }),
        );
      },
    );
    request.on('error', reject);
    abort = () => request.destroy();
    if (halfSent) request.write(payload.slice(0, payload.length >> 1));
    else request.end(payload);
  });
  return { answered, abort: () => abort() };
}

/** Waits until `condition` holds (a wait for the server's side, not a timing assertion). */
async function until(condition: () => boolean) {
  for (let attempt = 0; attempt < 1000 && !condition(); attempt++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
}

describe('admission hooks with a shared rate limit', () => {
  it('holds requests the share cannot cover until a lease arrives, then admits them', async () => {
    const { source, pending } = manualSource();
    const { control, port } = await serve(source);
    // One batch (5 tokens) of credit: five pass at once; the first asked for a lease.
    const first = await Promise.all(
      Array.from({ length: 5 }, () => post(port, '/v1/decisions', {}).answered),
    );
    expect(first.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    const waiting = Array.from({ length: 3 }, () => post(port, '/v1/decisions', {}));
    await until(() => control.quota(tenant.id).waiting === 3);
    expect(pending).toHaveLength(1);
    // The first request asked for two batches; the credit is paid from them.
    expect(pending[0]?.want).toBe(10);
    pending[0]?.grant(10);
    expect(
      (await Promise.all(waiting.map((request) => request.answered))).map((answer) => answer.status),
    ).toEqual([200, 200, 200]);
    await until(() => control.inflight === 0);
  });

  it('refuses with 429 and Retry-After those a dry bucket cannot cover, and charges a batch once it is read', async () => {
    const { source, pending } = manualSource();
    const { control, rejected, clock, port } = await serve(source);
    await Promise.all(Array.from({ length: 5 }, () => post(port, '/v1/decisions', {}).answered));
    const waiting = post(port, '/v1/decisions', {});
    await until(() => control.quota(tenant.id).waiting === 1);
    pending[0]?.grant(0); // the shared bucket is dry
    expect(await waiting.answered).toEqual({ status: 429, retryAfter: '1' });
    expect(rejected).toEqual(['rate_limited']);
    // Refused at once while the bucket has had no time to refill a batch (50 ms at this rate).
    expect(await post(port, '/v1/decisions', {}).answered).toMatchObject({ status: 429 });
    expect(pending).toHaveLength(1);
    clock.now += 60;
    // A batch: its slot waits for a lease, then its 40 tokens for another once the body is read.
    const batch = post(port, '/v1/events', { events: Array.from({ length: 40 }, (_, i) => i) });
    await until(() => pending.length === 2);
    pending[1]?.grant(pending[1].want);
    await until(() => pending.length === 3);
    expect(pending[2]?.want).toBeGreaterThanOrEqual(30);
    pending[2]?.grant(pending[2].want);
    expect((await batch.answered).status).toBe(200);
    await until(() => control.inflight === 0);
  });

  it('gives the slot of a request whose client went away while it waited straight back', async () => {
    const { source, pending } = manualSource();
    const { control, aborted, port } = await serve(source);
    await Promise.all(Array.from({ length: 5 }, () => post(port, '/v1/decisions', {}).answered));
    // Admitted before its body is read: the client leaves mid-body while the request waits.
    const gone = post(port, '/v1/decisions', { padding: 'x'.repeat(64) }, true);
    gone.answered.catch(() => {});
    await until(() => control.quota(tenant.id).waiting === 1);
    gone.abort();
    // The server sees the client go while the lease is still unanswered.
    await until(() => aborted.length === 1);
    pending[0]?.grant(10);
    await until(() => control.inflight === 0);
    // The node still serves the tenant.
    expect((await post(port, '/v1/decisions', {}).answered).status).toBe(200);
    await until(() => control.inflight === 0);
  });
});
