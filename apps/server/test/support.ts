import { createHmac } from 'node:crypto';
import { errorCodes } from '@vigil/protocol';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import type { TestNode, TestTenant } from './harness.js';

/** The error body every non-2xx answer has. */
export interface ErrorBodyShape {
  error: { code: string; message: string; details?: { path: string; message: string }[] };
}

/** Asserts an answer is the documented error: status, registered code, JSON shape. Returns the body. */
export function expectError(response: LightMyRequestResponse, status: number, code: string): ErrorBodyShape {
  const body = parseErrorBody(response);
  expect({ status: response.statusCode, code: body.error.code }, response.body).toEqual({ status, code });
  return body;
}

/**
 * Asserts a non-2xx answer is a well-formed error: JSON `{ error: { code, message } }` with a code
 * from the registry whose status is the answer's status, and never a 5xx.
 */
export function expectWellFormedError(response: LightMyRequestResponse, context = ''): ErrorBodyShape {
  expect(response.statusCode, `${context} ${response.body.slice(0, 300)}`).toBeLessThan(500);
  const body = parseErrorBody(response, context);
  const registered = (errorCodes as Record<string, { status: number }>)[body.error.code];
  expect(registered, `${context} unregistered code ${body.error.code}`).toBeDefined();
  expect(response.statusCode, `${context} status of ${body.error.code}`).toBe(registered?.status);
  return body;
}

function parseErrorBody(response: LightMyRequestResponse, context = ''): ErrorBodyShape {
  expect(String(response.headers['content-type']), `${context} content type`).toMatch(/^application\/json/);
  const body = JSON.parse(response.body) as ErrorBodyShape;
  expect(typeof body.error?.code, `${context} ${response.body}`).toBe('string');
  expect(typeof body.error.message, `${context} ${response.body}`).toBe('string');
  if (body.error.details !== undefined) {
    for (const detail of body.error.details) {
      expect(typeof detail.path).toBe('string');
      expect(typeof detail.message).toBe('string');
    }
  }
  return body;
}

/** Paths of an error's details, sorted. */
export function detailPaths(body: ErrorBodyShape): string[] {
  return (body.error.details ?? []).map((detail) => detail.path).sort();
}

/** Injects a request with exact bytes and headers (no JSON serialisation by the helper). */
export function raw(
  testNode: TestNode,
  method: InjectOptions['method'],
  url: string,
  headers: Record<string, string>,
  payload?: string | Buffer,
): Promise<LightMyRequestResponse> {
  return testNode.app.inject({ method, url, headers, ...(payload !== undefined && { payload }) });
}

/** Headers of a request signed with a key's secret: `hex HMAC-SHA256(secret, timestamp + "." + body)`. */
export function signedHeaders(
  tenant: Pick<TestTenant, 'keyId' | 'secret'>,
  body: string,
  timestamp = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const signature = createHmac('sha256', tenant.secret).update(`${timestamp}.${body}`).digest('hex');
  return {
    'x-vigil-key': tenant.keyId,
    'x-vigil-timestamp': String(timestamp),
    'x-vigil-signature': signature,
  };
}

/** A small deterministic PRNG (mulberry32), so generated inputs are the same on every run. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A decision request for the harness's `payment` type. */
export function payment(id: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'payment', id, fields: { account_id: 'u-1', ...fields } };
}

/** Creates a key with the given scopes for a tenant, with the admin token. */
export async function createKey(
  testNode: TestNode,
  tenantId: string,
  scopes: string[],
): Promise<{ apiKey: string; keyId: string; secret: string }> {
  const response = await testNode.admin('POST', `/v1/admin/tenants/${tenantId}/keys`, { scopes });
  expect(response.statusCode, response.body).toBe(201);
  const key = response.json() as { api_key: string; key_id: string; secret: string };
  return { apiKey: key.api_key, keyId: key.key_id, secret: key.secret };
}
