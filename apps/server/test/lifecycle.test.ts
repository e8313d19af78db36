import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { call, type NodeProcess, startProcess } from './process-harness.js';

const adminToken = 'lifecycle-admin-token-0123456789';

let dataDir: string;
let running: NodeProcess[] = [];

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'vigil-lifecycle-'));
});
afterEach(() => {
  for (const node of running) if (node.child.exitCode === null) node.child.kill('SIGKILL');
  running = [];
  rmSync(dataDir, { recursive: true, force: true });
});

async function start(env: Record<string, string> = {}): Promise<NodeProcess> {
  const node = await startProcess({ VIGIL_DATA_DIR: dataDir, VIGIL_ADMIN_TOKEN: adminToken, ...env });
  running.push(node);
  return node;
}

async function setUpTenant(url: string): Promise<{ tenantId: string; apiKey: string }> {
  const tenant = await call(url, adminToken, 'POST', '/v1/admin/tenants', { name: 'acme' });
  const tenantId = tenant.json.id as string;
  const key = await call(url, adminToken, 'POST', `/v1/admin/tenants/${tenantId}/keys`, {
    scopes: ['decide'],
  });
  const schema = { fields: { account_id: { type: 'string', required: true }, amount: { type: 'number' } } };
  expect(
    (await call(url, adminToken, 'PUT', `/v1/admin/tenants/${tenantId}/event-types/payment`, schema)).status,
  ).toBe(201);
  return { tenantId, apiKey: key.json.api_key as string };
}

/** Sends decisions from `workers` concurrent loops until stopped; returns every answered one. */
function load(url: string, apiKey: string, workers: number) {
  const answered = new Map<string, string>();
  let stopped = false;
  let sent = 0;
  const loops = Array.from({ length: workers }, async (_, worker) => {
    while (!stopped) {
      const id = `evt-${worker}-${sent++}`;
      try {
        const result = await call(url, apiKey, 'POST', '/v1/decisions', {
          type: 'payment',
          id,
          fields: { account_id: `u-${worker}`, amount: 10 },
        });
        if (result.status === 200) answered.set(id, result.json.decision_id as string);
      } catch {
        // the node died mid-request: this decision was not answered
        return;
      }
    }
  });
  const stop = () => {
    stopped = true;
    return Promise.all(loops);
  };
  return { answered, stop };
}

describe('a node process', () => {
  it('keeps every answered decision across SIGKILL under concurrent load', async () => {
    const first = await start();
    const { tenantId, apiKey } = await setUpTenant(first.url);
    const traffic = load(first.url, apiKey, 16);
    while (traffic.answered.size < 400) await new Promise((resolve) => setTimeout(resolve, 10));
    first.child.kill('SIGKILL');
    await first.exited;
    await traffic.stop();
    const answered = [...traffic.answered];
    expect(answered.length).toBeGreaterThanOrEqual(400);

    const second = await start();
    for (const [eventId, decisionId] of answered) {
      const stored = await call(
        second.url,
        adminToken,
        'GET',
        `/v1/admin/tenants/${tenantId}/decisions/${decisionId}`,
      );
      expect(stored.status, `decision of ${eventId}`).toBe(200);
      expect((stored.json.event as { id: string }).id).toBe(eventId);
    }
    // Idempotency survives the restart: a retry gets the stored decision, not a new one.
    const [eventId, decisionId] = answered[0] as [string, string];
    const retry = await call(second.url, apiKey, 'POST', '/v1/decisions', {
      type: 'payment',
      id: eventId,
      fields: { account_id: 'u-0', amount: 10 },
    });
    expect(retry.json.decision_id).toBe(decisionId);
  });

  it('drains on SIGTERM: not ready, in-flight requests answered and logged, exit 0', async () => {
    const node = await start({ VIGIL_SHUTDOWN_DELAY_MS: '400' });
    const { tenantId, apiKey } = await setUpTenant(node.url);
    const traffic = load(node.url, apiKey, 4);
    while (traffic.answered.size < 50) await new Promise((resolve) => setTimeout(resolve, 10));
    node.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await fetch(`${node.url}/readyz`)).status).toBe(503);
    const exit = await node.exited;
    await traffic.stop();
    expect(exit).toEqual({ code: 0, signal: null });

    const after = await start();
    for (const [, decisionId] of traffic.answered) {
      const stored = await call(
        after.url,
        adminToken,
        'GET',
        `/v1/admin/tenants/${tenantId}/decisions/${decisionId}`,
      );
      expect(stored.status).toBe(200);
    }
  });

  it("loads the packaged IP data in the bundle's worker thread after start", async () => {
    // The other process tests run with VIGIL_IP_DATA=off; this one runs the bundled
    // ip-database-worker.js, which must find its chunks and the packaged data from the bundle.
    const node = await start({ VIGIL_IP_DATA: 'packaged', VIGIL_LOG_LEVEL: 'info' });
    let loaded: { ranges: number } | undefined;
    for (let waited = 0; waited < 25_000 && loaded === undefined; waited += 100) {
      const line = node
        .stdout()
        .split('\n')
        .find((text) => text.includes('"IP database loaded"'));
      if (line !== undefined) loaded = JSON.parse(line) as { ranges: number };
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(loaded?.ranges).toBeGreaterThan(100_000);
    expect(node.stdout()).not.toMatch(/"level":50/);
  });

  it('generates the admin token on first start, mode 0600, printed only once', async () => {
    const first = await startProcess({ VIGIL_DATA_DIR: dataDir });
    running.push(first);
    const tokenFile = join(dataDir, 'admin-token');
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(first.stdout()).toContain(token);
    expect((await call(first.url, token, 'GET', '/v1/admin/tenants')).status).toBe(200);
    first.child.kill('SIGTERM');
    await first.exited;

    const second = await startProcess({ VIGIL_DATA_DIR: dataDir });
    running.push(second);
    expect(second.stdout()).not.toContain(token);
    expect((await call(second.url, token, 'GET', '/v1/admin/tenants')).status).toBe(200);
  });
});
