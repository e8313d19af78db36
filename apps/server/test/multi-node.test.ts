import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisProcess } from '@vigil/store-redis/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The store's own helper: a private `postgres` on a free port that the test can stop and restart.
import { PostgresProcess } from '../../../packages/store-postgres/src/test-support/postgres-process.js';
import { withClient } from '../../../packages/store-postgres/src/test-support/test-database.js';
import { call, type NodeProcess, startProcess } from './process-harness.js';

// Three nodes as real processes, sharing one Redis and one PostgreSQL that this test starts on
// free ports (never the shared servers), kills and restarts itself.

const adminToken = 'multi-node-admin-token-0123456789';
const masterKey = 'ab'.repeat(32);

let redis: RedisProcess;
let postgres: PostgresProcess;
const dataDirs: string[] = [];
const nodes: NodeProcess[] = [];
let apiKey = '';
let eventCounter = 0;

/** Every decision answered with 200, by the node (index in `nodes`) that answered it. */
const answered: { node: number; decisionId: string }[] = [];

interface Outcome {
  node: number;
  status: number;
  verdict?: string;
  degraded: string[];
  policyVersion?: number | null;
}

function startNode(index: number): Promise<NodeProcess> {
  return startProcess({
    VIGIL_DATA_DIR: dataDirs[index] as string,
    VIGIL_ADMIN_TOKEN: adminToken,
    VIGIL_MASTER_KEY: masterKey,
    VIGIL_REDIS_URL: redis.url,
    VIGIL_DATABASE_URL: postgres.url,
  });
}

function node(index: number): NodeProcess {
  return nodes[index] as NodeProcess;
}

/** One login decision on a node; a transport failure counts as status 0. */
async function login(index: number, account: string, success: boolean, token = apiKey): Promise<Outcome> {
  try {
    const response = await fetch(`${node(index).url}/v1/decisions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        type: 'login',
        id: `evt-${++eventCounter}`,
        fields: { account_id: account, success },
      }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json()) as {
      decision_id?: string;
      verdict?: string;
      degraded?: string[];
      policy_version?: number | null;
    };
    if (response.status === 200 && body.decision_id !== undefined)
      answered.push({ node: index, decisionId: body.decision_id });
    return {
      node: index,
      status: response.status,
      ...(body.verdict !== undefined && { verdict: body.verdict }),
      degraded: body.degraded ?? [],
      ...(body.policy_version !== undefined && { policyVersion: body.policy_version }),
    };
  } catch {
    return { node: index, status: 0, degraded: [] };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` on nodes 2 and 3 until it holds on both; returns how long that took after `since`
 * (the moment the change was answered on node 1). Fails after a generous 10 s.
 */
async function propagated(
  what: string,
  since: number,
  check: (index: number) => Promise<boolean>,
): Promise<number> {
  const deadline = Date.now() + 10_000;
  const pending = new Set([1, 2]);
  while (pending.size > 0) {
    for (const index of [...pending]) if (await check(index)) pending.delete(index);
    if (pending.size === 0) break;
    if (Date.now() > deadline)
      throw new Error(`${what} did not reach nodes ${[...pending].map((i) => i + 1)}`);
    await sleep(10);
  }
  const ms = Math.round(performance.now() - since);
  propagation.push({ what, ms });
  return ms;
}

const propagation: { what: string; ms: number }[] = [];

/** Load on the given nodes until `stop()`: 4 requests in flight, round-robin. */
function startLoad(targets: number[]) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  const workers = Array.from({ length: 4 }, async (_, worker) => {
    for (let i = worker; !stopped; i += 4) {
      const target = targets[i % targets.length] as number;
      outcomes.push(await login(target, `load-${i % 40}`, false));
    }
  });
  return {
    outcomes,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

/** Waits until `condition` holds, checking every 50 ms; fails with `what` after `timeoutMs`. */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function metric(index: number, name: string): Promise<number> {
  const text = await (await fetch(`${node(index).url}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([RedisProcess.start(), PostgresProcess.start()]);
  for (let index = 0; index < 3; index++) dataDirs.push(mkdtempSync(join(tmpdir(), `vigil-node-${index}-`)));
  // All three start at once: one applies the migrations, the others wait for it.
  nodes.push(...(await Promise.all([0, 1, 2].map(startNode))));
}, 60_000);

afterAll(async () => {
  for (const running of nodes) {
    if (running.child.exitCode === null && running.child.signalCode === null) {
      running.child.kill('SIGKILL');
      await running.exited;
    }
  }
  await redis?.stop();
  await postgres?.destroy();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  if (propagation.length > 0)
    console.info(
      `propagation to nodes 2 and 3: ${propagation.map((p) => `${p.what} ${p.ms} ms`).join(', ')}`,
    );
}, 30_000);

describe('three nodes on one Redis and one PostgreSQL', () => {
  it('serves on nodes 2 and 3 a tenant, key, event type, feature and policy created through node 1', async () => {
    const one = node(0).url;
    const tenant = await call(one, adminToken, 'POST', '/v1/admin/tenants', { name: 'acme' });
    expect(tenant.status, JSON.stringify(tenant.json)).toBe(201);
    const tenantId = tenant.json.id as string;
    const key = await call(one, adminToken, 'POST', `/v1/admin/tenants/${tenantId}/keys`, {
      scopes: ['decide', 'manage'],
    });
    expect(key.status).toBe(201);
    apiKey = key.json.api_key as string;
    await propagated(
      'tenant and key',
      performance.now(),
      async (index) => (await call(node(index).url, apiKey, 'GET', '/v1/manage/event-types')).status === 200,
    );

    let since = performance.now();
    const eventType = await call(one, apiKey, 'PUT', '/v1/manage/event-types/login', {
      fields: { account_id: { type: 'string', required: true }, success: { type: 'boolean' } },
    });
    expect(eventType.status).toBeLessThan(300);
    await propagated(
      'event type',
      since,
      async (index) =>
        (await call(node(index).url, apiKey, 'GET', '/v1/manage/event-types/login')).status === 200,
    );

    since = performance.now();
    const feature = await call(one, apiKey, 'PUT', '/v1/manage/features/failed_logins_1h', {
      aggregation: 'count',
      by: ['account_id'],
      window: '1h',
      event_types: ['login'],
      filter: 'event.success == false',
    });
    expect(feature.status).toBeLessThan(300);
    await propagated(
      'feature',
      since,
      async (index) =>
        (await call(node(index).url, apiKey, 'GET', '/v1/manage/features/failed_logins_1h')).status === 200,
    );

    const version = await call(one, apiKey, 'POST', '/v1/manage/policies/login/versions', {
      strategy: 'worst',
      on_missing: 'not_hit',
      rules: [{ id: 'brute-force', when: 'features.failed_logins_1h >= 5', verdict: 'reject' }],
    });
    expect(version.status, JSON.stringify(version.json)).toBe(201);
    since = performance.now();
    const publish = await call(one, apiKey, 'POST', '/v1/manage/policies/login/versions/1/publish', {});
    expect(publish.status, JSON.stringify(publish.json)).toBe(200);
    await propagated(
      'published policy',
      since,
      async (index) => (await login(index, 'u-probe', true)).policyVersion === 1,
    );

    // A revocation reaches the other nodes too, cached credentials included.
    const second = await call(one, adminToken, 'POST', `/v1/admin/tenants/${tenantId}/keys`, {
      scopes: ['decide'],
    });
    const secondKey = second.json.api_key as string;
    await propagated(
      'second key',
      performance.now(),
      async (index) => (await login(index, 'u-probe', true, secondKey)).status === 200,
    );
    since = performance.now();
    const revoke = await call(
      one,
      adminToken,
      'DELETE',
      `/v1/admin/tenants/${tenantId}/keys/${second.json.key_id}`,
    );
    expect(revoke.status).toBeLessThan(300);
    await propagated(
      'key revocation',
      since,
      async (index) => (await login(index, 'u-probe', true, secondKey)).status === 401,
    );
    // Node 1 announced its own changes to itself too; it still serves all of them.
    expect((await login(0, 'u-probe', true)).policyVersion).toBe(1);
    expect((await login(0, 'u-probe', true, secondKey)).status).toBe(401);
    // Nodes 2 and 3 keep what reached them on disk as their last good configuration.
    for (const index of [1, 2]) {
      await until(`node ${index + 1}'s last good configuration`, () => {
        const path = join(dataDirs[index] as string, 'config-snapshot.json');
        if (!existsSync(path)) return false;
        const { config } = JSON.parse(readFileSync(path, 'utf8')) as {
          config: { policyStates: { published: number }[]; keys: { revokedAt: string | null }[] };
        };
        return config.policyStates[0]?.published === 1 && config.keys.some((k) => k.revokedAt !== null);
      });
    }
  });

  it('sees the 5th failed login of an account whichever node gets it', async () => {
    for (const start of [0, 1, 2]) {
      const account = `u-brute-${start}`;
      const verdicts: string[] = [];
      for (let attempt = 0; attempt < 6; attempt++) {
        const outcome = await login((start + attempt) % 3, account, false);
        expect(outcome.status).toBe(200);
        expect(outcome.degraded).toEqual([]);
        verdicts.push(outcome.verdict as string);
      }
      expect(verdicts, `starting on node ${start + 1}`).toEqual([
        'accept',
        'accept',
        'accept',
        'accept',
        'reject',
        'reject',
      ]);
    }
  });

  it('answers an event id decided on one node with the same decision on the others, replayed, counted once', async () => {
    const decide = async (index: number, id: string) => {
      const response = await fetch(`${node(index).url}/v1/decisions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'login', id, fields: { account_id: 'u-idem', success: false } }),
        signal: AbortSignal.timeout(10_000),
      });
      return {
        status: response.status,
        replayed: response.headers.get('idempotent-replay') === 'true',
        body: (await response.json()) as { decision_id: string; verdict: string },
      };
    };
    const first = await decide(0, 'evt-idem-1');
    expect(first).toMatchObject({ status: 200, replayed: false });
    for (const index of [1, 2]) {
      const again = await decide(index, 'evt-idem-1');
      expect(again).toMatchObject({ status: 200, replayed: true });
      expect(again.body).toEqual(first.body);
    }
    // Sent to two nodes at once, before either record can be in PostgreSQL: one node decides, the
    // other waits for its answer through Redis.
    const both = await Promise.all([decide(0, 'evt-idem-2'), decide(2, 'evt-idem-2')]);
    expect(both.map((outcome) => outcome.status)).toEqual([200, 200]);
    expect(both[0]?.body.decision_id).toBe(both[1]?.body.decision_id);
    expect(both.filter((outcome) => outcome.replayed)).toHaveLength(1);
    // Five requests, two events: the failed-login counter of the account saw two. The 5th event
    // (not the 5th request) is the one rejected.
    expect((await decide(1, 'evt-idem-3')).body.verdict).toBe('accept');
    expect((await decide(2, 'evt-idem-4')).body.verdict).toBe('accept');
    expect((await decide(0, 'evt-idem-5')).body.verdict).toBe('reject');
  });

  it('keeps answering on nodes 1 and 3 when node 2 is killed', async () => {
    // Everything node 2 answered is in PostgreSQL before it dies, so the final count can include it.
    await until(
      'node 2 delivered its decisions',
      async () => (await metric(1, 'vigil_decision_log_spooled_records')) === 0,
    );
    node(1).child.kill('SIGKILL');
    expect((await node(1).exited).signal).toBe('SIGKILL');
    for (const index of [0, 2, 0, 2]) {
      const outcome = await login(index, 'u-after-kill', false);
      expect(outcome.status).toBe(200);
      expect(outcome.degraded).toEqual([]);
    }
  });

  it('counts locally, marked degraded, while Redis is down, and shares counters again once it is back', async () => {
    const load = startLoad([0, 2]);
    try {
      await until('load before the outage', () => load.outcomes.length >= 20);
      await redis.kill();
      const killedAt = load.outcomes.length;
      await until('degraded decisions on both nodes', () => {
        const during = load.outcomes
          .slice(killedAt)
          .filter((outcome) => outcome.degraded.includes('features'));
        return new Set(during.map((outcome) => outcome.node)).size === 2;
      });
      await sleep(300);
      await redis.restart();
      const restartedAt = load.outcomes.length;
      // Once each node reaches Redis again and has replayed what it counted alone, it stops saying degraded.
      await until(
        'decisions no longer degraded on both nodes',
        () => {
          const recent = load.outcomes.slice(restartedAt);
          return [0, 2].every((index) => {
            const ofNode = recent.filter((outcome) => outcome.node === index);
            return ofNode.length >= 5 && ofNode.slice(-5).every((outcome) => outcome.degraded.length === 0);
          });
        },
        30_000,
      );
    } finally {
      await load.stop();
    }
    expect(load.outcomes.filter((outcome) => outcome.status !== 200)).toEqual([]);
  }, 60_000);

  it('spools the decision log while PostgreSQL is down, and delivers every decision once after', async () => {
    const load = startLoad([0, 2]);
    try {
      await until('load before the outage', () => load.outcomes.length >= 20);
      await postgres.stop();
      await until(
        'spooled records on both nodes',
        async () =>
          (await metric(0, 'vigil_decision_log_spooled_records')) > 0 &&
          (await metric(2, 'vigil_decision_log_spooled_records')) > 0,
      );
      const stoppedAt = load.outcomes.length;
      await until('decisions answered during the outage', () => load.outcomes.length >= stoppedAt + 40);
      // A configuration change cannot be stored now: refused with a 503, nothing half-done.
      const refused = await call(node(0).url, apiKey, 'PUT', '/v1/manage/event-types/refund', {
        fields: { amount: { type: 'number' } },
      });
      expect({ status: refused.status, body: refused.json }).toMatchObject({
        status: 503,
        body: { error: { code: 'component_unavailable' } },
      });
      // Node 2 comes back while PostgreSQL is down: it serves its last good configuration.
      nodes[1] = await startNode(1);
      const restarted = await login(1, 'u-restarted', false);
      expect(restarted).toMatchObject({ status: 200, policyVersion: 1 });
      expect(await metric(1, 'vigil_decision_log_spooled_records')).toBeGreaterThan(0);
      await postgres.resume();
      const resumedAt = load.outcomes.length;
      await until('decisions answered after the outage', () => load.outcomes.length >= resumedAt + 20);
    } finally {
      await load.stop();
    }
    expect(load.outcomes.filter((outcome) => outcome.status !== 200)).toEqual([]);
    await until(
      'every spooled record delivered',
      async () =>
        (await metric(0, 'vigil_decision_log_spooled_records')) === 0 &&
        (await metric(1, 'vigil_decision_log_spooled_records')) === 0 &&
        (await metric(2, 'vigil_decision_log_spooled_records')) === 0,
      30_000,
    );
    const ids = answered.map((decision) => decision.decisionId);
    expect(new Set(ids).size).toBe(ids.length);
    const rows = await withClient(
      postgres.url,
      async (client) =>
        (
          await client.query<{ decision_id: string; copies: string }>(
            'SELECT decision_id, count(*) AS copies FROM decisions WHERE decision_id = ANY($1) GROUP BY decision_id',
            [ids],
          )
        ).rows,
    );
    const copies = new Map(rows.map((row) => [row.decision_id, Number(row.copies)]));
    expect(ids.filter((id) => copies.get(id) !== 1)).toEqual([]);
    expect(copies.size).toBe(ids.length);

    // Node 2, started from its last good configuration, follows changes again now.
    const since = performance.now();
    const signup = await call(node(0).url, apiKey, 'PUT', '/v1/manage/event-types/signup', {
      fields: { email: { type: 'email', required: true } },
    });
    expect(signup.status).toBeLessThan(300);
    await propagated(
      'event type, after the outage',
      since,
      async (index) =>
        (await call(node(index).url, apiKey, 'GET', '/v1/manage/event-types/signup')).status === 200,
    );
  }, 60_000);

  it('hits a list rule on nodes 2 and 3 within 1 s of an entry added through node 1', async () => {
    const one = node(0).url;
    const list = await call(one, apiKey, 'PUT', '/v1/manage/lists/blocked_accounts', {
      kind: 'block',
      type: 'account',
    });
    expect(list.status, JSON.stringify(list.json)).toBeLessThan(300);
    // Lists are in Redis: every node has the list before a policy naming it is published.
    await propagated(
      'list definition',
      performance.now(),
      async (index) =>
        (await call(node(index).url, apiKey, 'GET', '/v1/manage/lists/blocked_accounts')).status === 200,
    );
    const version = await call(one, apiKey, 'POST', '/v1/manage/policies/login/versions', {
      strategy: 'worst',
      on_missing: 'not_hit',
      rules: [
        { id: 'brute-force', when: 'features.failed_logins_1h >= 5', verdict: 'reject' },
        { id: 'listed', when: "in_list('blocked_accounts', event.account_id)", verdict: 'reject' },
      ],
    });
    expect(version.status, JSON.stringify(version.json)).toBe(201);
    const published = version.json.version as number;
    const publish = await call(
      one,
      apiKey,
      'POST',
      `/v1/manage/policies/login/versions/${published}/publish`,
      {},
    );
    expect(publish.status, JSON.stringify(publish.json)).toBe(200);
    await propagated(
      'policy with a list rule',
      performance.now(),
      async (index) => (await login(index, 'u-listed', true)).policyVersion === published,
    );
    expect((await login(1, 'u-listed', true)).verdict).toBe('accept');

    const since = performance.now();
    const added = await call(one, apiKey, 'POST', '/v1/manage/lists/blocked_accounts/entries', [
      { value: 'u-listed', note: 'multi-node' },
    ]);
    expect(added.json).toMatchObject({ added: 1, rejected: [] });
    const pending = new Set([1, 2]);
    while (pending.size > 0) {
      for (const index of [...pending])
        if ((await login(index, 'u-listed', true)).verdict === 'reject') pending.delete(index);
      if (pending.size > 0 && performance.now() - since > 1000)
        throw new Error(`the list entry did not reach nodes ${[...pending].map((i) => i + 1)} within 1 s`);
    }
    propagation.push({ what: 'list entry', ms: Math.round(performance.now() - since) });
    expect((await login(2, 'u-not-listed', true)).verdict).toBe('accept');
  });
});
