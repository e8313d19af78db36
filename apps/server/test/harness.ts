import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../src/config.js';
import { createNode, type VigilNode } from '../src/node.js';

export const adminToken = 'test-admin-token-0123456789';

/** A node on a fresh temporary data dir, driven with `app.inject()`. */
export interface TestNode {
  node: VigilNode;
  app: FastifyInstance;
  dataDir: string;
  /** Injects a request with the admin token. */
  admin(method: InjectOptions['method'], url: string, body?: unknown): Promise<LightMyRequestResponse>;
  /** Injects a request with an API key. */
  as(
    apiKey: string,
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
  ): Promise<LightMyRequestResponse>;
  /** Creates a tenant with a `decide`+`manage` key and a `payment` event type. */
  tenant(name?: string): Promise<TestTenant>;
  close(): Promise<void>;
}

export interface TestTenant {
  id: string;
  apiKey: string;
  keyId: string;
  secret: string;
}

export const paymentSchema = {
  fields: {
    account_id: { type: 'string', required: true },
    amount: { type: 'number' },
    count: { type: 'integer' },
    ip: { type: 'ip' },
    email: { type: 'email' },
    phone: { type: 'phone' },
    at: { type: 'timestamp' },
    channel: { type: 'enum', values: ['web', 'app'] },
    trusted: { type: 'boolean' },
    tags: { type: 'string_list' },
  },
};

export async function startTestNode(env: Record<string, string> = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'vigil-test-'));
  const config = loadConfig({
    VIGIL_DATA_DIR: dataDir,
    VIGIL_ADMIN_TOKEN: adminToken,
    VIGIL_LOG_LEVEL: 'silent',
    // Parsing the packaged IP data costs seconds of CPU per node; only the enrichment test needs it.
    VIGIL_IP_DATA: 'off',
    // The test process runs the node and its clients on one loop, and the suite's other files
    // load the machine: lag-based shedding would shed at random. admission.test.ts tests it.
    VIGIL_SHED_LAG_MS: '0',
    ...env,
  });
  const node = await createNode(config);
  const app = node.app;
  const send = (authorization: string, method: InjectOptions['method'], url: string, body?: unknown) =>
    app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${authorization}` },
      ...(body !== undefined && { payload: body as object }),
    });
  const testNode: TestNode = {
    node,
    app,
    dataDir,
    admin: (method, url, body) => send(adminToken, method, url, body),
    as: send,
    async tenant(name = 'acme') {
      const tenant = (await testNode.admin('POST', '/v1/admin/tenants', { name })).json() as { id: string };
      const key = (
        await testNode.admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { scopes: ['decide', 'manage'] })
      ).json() as { api_key: string; key_id: string; secret: string };
      const put = await testNode.as(key.api_key, 'PUT', '/v1/manage/event-types/payment', paymentSchema);
      if (put.statusCode !== 201) throw new Error(`event type: ${put.body}`);
      return { id: tenant.id, apiKey: key.api_key, keyId: key.key_id, secret: key.secret };
    },
    async close() {
      await node.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return testNode;
}
