import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigSnapshot, ConfigStore } from '@vigil/engine';
import type { InjectOptions } from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import {
  configSnapshotFile,
  openConfiguration,
  readConfigSnapshot,
  SnapshottingConfigStore,
} from '../src/config-snapshot.js';
import { createNode, type VigilNode } from '../src/node.js';
import { adminToken, paymentSchema } from './harness.js';
import { expectError } from './support.js';

const dataDirs: string[] = [];
const nodes: VigilNode[] = [];

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.close();
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function freshDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-snapshot-'));
  dataDirs.push(dir);
  return dir;
}

/** A node on `dataDir`, as `npm start` would run it (the master key and admin token from the data dir's files). */
async function start(dataDir: string): Promise<VigilNode> {
  const node = await createNode(
    loadConfig({
      VIGIL_DATA_DIR: dataDir,
      VIGIL_ADMIN_TOKEN: adminToken,
      VIGIL_LOG_LEVEL: 'silent',
      VIGIL_IP_DATA: 'off',
    }),
  );
  nodes.push(node);
  return node;
}

async function stop(node: VigilNode): Promise<void> {
  nodes.splice(nodes.indexOf(node), 1);
  await node.close();
}

function send(node: VigilNode, token: string, method: InjectOptions['method'], url: string, body?: unknown) {
  return node.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(body !== undefined && { payload: body as object }),
  });
}

/** A tenant with a key, the payment event type and a published policy rejecting large amounts. */
async function configure(node: VigilNode): Promise<{ apiKey: string; tenantId: string }> {
  const tenant = (await send(node, adminToken, 'POST', '/v1/admin/tenants', { name: 'acme' })).json() as {
    id: string;
  };
  const key = (
    await send(node, adminToken, 'POST', `/v1/admin/tenants/${tenant.id}/keys`, {
      scopes: ['decide', 'manage'],
    })
  ).json() as { api_key: string };
  expect(
    (await send(node, key.api_key, 'PUT', '/v1/manage/event-types/payment', paymentSchema)).statusCode,
  ).toBe(201);
  const created = await send(node, key.api_key, 'POST', '/v1/manage/policies/payment/versions', {
    rules: [{ id: 'large', when: 'event.amount > 1000.0', verdict: 'reject' }],
  });
  const { version } = created.json() as { version: number };
  expect(
    (await send(node, key.api_key, 'POST', `/v1/manage/policies/payment/versions/${version}/publish`))
      .statusCode,
  ).toBe(200);
  return { apiKey: key.api_key, tenantId: tenant.id };
}

const payment = (id: string, amount: number) => ({
  type: 'payment',
  id,
  fields: { account_id: 'u-1', amount },
});

function corrupt(path: string): void {
  writeFileSync(path, Buffer.from('this is not a SQLite database, just garbage bytes '.repeat(200)));
  for (const suffix of ['-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
}

describe('last good configuration on disk', () => {
  it('serves decisions from the snapshot when the store is corrupt, and refuses changes with 503', async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir);
    const { apiKey, tenantId } = await configure(first);
    await stop(first);

    const snapshotPath = join(dataDir, configSnapshotFile);
    expect(statSync(snapshotPath).mode & 0o777).toBe(0o600);
    const snapshot = readFileSync(snapshotPath, 'utf8');
    // Key hashes and sealed secrets only: the API key's secret is nowhere in it.
    expect(snapshot).not.toContain(apiKey.split('.').at(-1));
    expect((await readConfigSnapshot(snapshotPath))?.config.policyStates).toHaveLength(1);

    corrupt(join(dataDir, 'config.db'));
    const second = await start(dataDir);
    const decided = await send(second, apiKey, 'POST', '/v1/decisions', payment('after-corruption', 5000));
    expect(decided.statusCode, decided.body).toBe(200);
    expect(decided.json()).toMatchObject({ verdict: 'reject', policy_version: 1, rules: [{ id: 'large' }] });
    expect((await send(second, apiKey, 'POST', '/v1/decisions', payment('small', 5))).json()).toMatchObject({
      verdict: 'accept',
    });

    // Every kind of change is refused before it is made, with the registered code.
    const refused = [
      await send(second, adminToken, 'POST', '/v1/admin/tenants', { name: 'other' }),
      await send(second, adminToken, 'PATCH', `/v1/admin/tenants/${tenantId}`, { name: 'renamed' }),
      await send(second, adminToken, 'POST', `/v1/admin/tenants/${tenantId}/keys`, { scopes: ['decide'] }),
      await send(second, apiKey, 'PUT', '/v1/manage/event-types/login', paymentSchema),
      await send(second, apiKey, 'POST', '/v1/manage/policies/payment/versions', {
        rules: [{ id: 'any', when: 'true', verdict: 'review' }],
      }),
      await send(second, apiKey, 'PUT', '/v1/manage/lists/blocked', { kind: 'block', description: 'x' }),
    ];
    for (const response of refused) {
      const body = expectError(response, 503, 'config_unavailable');
      expect(body.error.message).toMatch(/last good configuration/);
    }
    // Nothing changed: the policy still decides, the tenant kept its name.
    expect(
      (await send(second, apiKey, 'POST', '/v1/decisions', payment('still', 5000))).json(),
    ).toMatchObject({
      verdict: 'reject',
    });
    expect((await send(second, adminToken, 'GET', `/v1/admin/tenants/${tenantId}`)).json()).toMatchObject({
      name: 'acme',
    });
    // The snapshot is left as it was.
    expect(readFileSync(snapshotPath, 'utf8')).toBe(snapshot);
  });

  it('refuses to start when the store is corrupt and there is no snapshot, saying why', async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir);
    await configure(first);
    await stop(first);
    rmSync(join(dataDir, configSnapshotFile));
    corrupt(join(dataDir, 'config.db'));
    await expect(start(dataDir)).rejects.toThrow(
      /configuration store cannot be read .* there is no .*config-snapshot\.json; refusing to start/,
    );
  });

  it('refuses to start when the store is corrupt and the snapshot is damaged too', async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir);
    await configure(first);
    await stop(first);
    writeFileSync(join(dataDir, configSnapshotFile), '{"format":1,"written_at":"x","config":');
    corrupt(join(dataDir, 'config.db'));
    await expect(start(dataDir)).rejects.toThrow(/config-snapshot\.json is unusable/);
  });

  it('takes an empty store with a non-empty snapshot as lost, not as a new installation', async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir);
    const { apiKey } = await configure(first);
    await stop(first);
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dataDir, `config.db${suffix}`), { force: true });
    const second = await start(dataDir);
    expect(
      (await send(second, apiKey, 'POST', '/v1/decisions', payment('lost-store', 5000))).json(),
    ).toMatchObject({
      verdict: 'reject',
    });
    expectError(
      await send(second, adminToken, 'POST', '/v1/admin/tenants', { name: 'x' }),
      503,
      'config_unavailable',
    );
  });

  it('keeps the snapshot current with every change, so a restart after corruption has the latest', async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir);
    const { apiKey } = await configure(first);
    // A later change: version 2 lowers the threshold. The node's close writes the pending snapshot.
    const created = await send(first, apiKey, 'POST', '/v1/manage/policies/payment/versions', {
      rules: [{ id: 'medium', when: 'event.amount > 100.0', verdict: 'review' }],
    });
    expect(
      (
        await send(
          first,
          apiKey,
          'POST',
          `/v1/manage/policies/payment/versions/${(created.json() as { version: number }).version}/publish`,
        )
      ).statusCode,
    ).toBe(200);
    await stop(first);
    corrupt(join(dataDir, 'config.db'));
    const second = await start(dataDir);
    expect(
      (await send(second, apiKey, 'POST', '/v1/decisions', payment('latest', 500))).json(),
    ).toMatchObject({
      verdict: 'review',
      policy_version: 2,
    });
  });
});

/** A store whose writes succeed and whose `load()` calls are counted. */
function countingStore(): ConfigStore & { loads: number } {
  const empty: ConfigSnapshot = {
    tenants: [],
    keys: [],
    eventTypes: [],
    policyVersions: [],
    policyStates: [],
  };
  const store = {
    loads: 0,
    async load() {
      store.loads++;
      return empty;
    },
    async putTenant() {},
    async deleteTenant() {},
    async putKey() {},
    async putEventType() {},
    async putPolicyVersion() {},
    async putPolicyState() {},
    async putFeature() {},
    async deleteFeature() {},
    async appendAudit() {},
    async listAudit() {
      return [];
    },
    async close() {},
  };
  return store;
}

const audit = {
  at: '',
  actor: 'admin',
  tenantId: null,
  action: 'x',
  target: 'x',
  diff: { before: null, after: null },
};
const tenant = (id: string) => ({
  id,
  name: id,
  rateLimit: null,
  maxConcurrency: null,
  createdAt: '',
  updatedAt: '',
});

describe('SnapshottingConfigStore', () => {
  it('writes a burst of changes once', async () => {
    const dir = freshDataDir();
    const inner = countingStore();
    const store = new SnapshottingConfigStore(inner, {
      path: join(dir, configSnapshotFile),
      logger: pino({ level: 'silent' }),
      debounceMs: 60_000,
    });
    await Promise.all(Array.from({ length: 20 }, (_, index) => store.putTenant(tenant(`t${index}`), audit)));
    expect(existsSync(join(dir, configSnapshotFile))).toBe(false);
    await store.flush();
    expect(inner.loads).toBe(1);
    expect(existsSync(join(dir, configSnapshotFile))).toBe(true);
    await store.flush();
    expect(inner.loads).toBe(1);
    await store.close();
  });

  it('logs a failed write and keeps the change, which is durable in the store', async () => {
    const dir = freshDataDir();
    // The snapshot's path is a directory: every write fails.
    const path = join(dir, configSnapshotFile);
    mkdirSync(path);
    const errors: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => errors.push(line) });
    const inner = countingStore();
    const store = new SnapshottingConfigStore(inner, { path, logger, debounceMs: 60_000 });
    await expect(store.putTenant(tenant('t1'), audit)).resolves.toBeUndefined();
    await store.flush();
    expect(errors.join('')).toMatch(/last good configuration not written/);
    await store.close();
  });

  it('falls back to the snapshot when opening the store throws', async () => {
    const dir = freshDataDir();
    const logger = pino({ level: 'silent' });
    const good = await openConfiguration({
      dataDir: dir,
      logger,
      open: () => {
        const store = countingStore();
        store.load = async () => ({ ...(await countingStore().load()), tenants: [tenant('t1')] });
        return store;
      },
    });
    expect(good.fromSnapshot).toBe(false);
    await good.store.close();
    const fallback = await openConfiguration({
      dataDir: dir,
      logger,
      open: () => {
        throw new Error('connection refused');
      },
    });
    expect(fallback.fromSnapshot).toBe(true);
    expect(fallback.config.tenants.map((record) => record.id)).toEqual(['t1']);
    await expect(fallback.store.putTenant(tenant('t2'), audit)).rejects.toMatchObject({
      code: 'config_unavailable',
    });
  });
});
