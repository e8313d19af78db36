// The multi-node drills of `npm run chaos` (issue 6): three Vigil nodes on one private Redis and
// one private PostgreSQL (bench/backends.mjs), the load round-robin over the three (the generator
// sends a request whose connection fails to the next node, as a load balancer would), and one
// fault per drill:
//
// - multi-node-kill           SIGKILL one node under load; restarted on its data dir later
// - multi-node-redis-down     Redis shut down (its data saved) for 30 s, then started again
// - multi-node-postgres-down  PostgreSQL shut down for 60 s, then started again
//
// After the load every node is stopped (SIGTERM: each drains and delivers its journal), and the
// decision log in PostgreSQL is checked: every answered decision must be there once, counted by
// decision id. What each row means is in docs/RELIABILITY.md, "Chaos drills".
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { rawCommand } from '../../packages/store-redis/dist/testing/redis-processes.js';
import { pgQuery, startBackends } from '../backends.mjs';
import { generateEvents } from '../reference-policy.mjs';
import { checkPostgresDecisionLog, firstOkAfter, summarise } from './analysis.mjs';
import {
  api,
  freePort,
  killNode,
  makeTempDir,
  randomToken,
  removeTempDir,
  startNode,
  stopNode,
} from './processes.mjs';
import { setUpTenant } from './setup.mjs';

export const multiNodeDrillNames = ['multi-node-kill', 'multi-node-redis-down', 'multi-node-postgres-down'];

const nodeCount = 3;
/** The seed of the generator's events (bench/chaos/load-generator.mjs), for the counter check. */
const generatorSeed = 20261126;

/**
 * Starts the private Redis and PostgreSQL and three nodes on them, runs `body(cluster)`, stops
 * the nodes, checks the shared decision log, and removes everything. `body` returns
 * `{ row, answered, afterStop? }`; `answered` is every stream's [eventId, decisionId] pairs, and
 * `afterStop(query)` runs once the nodes are stopped (with a PostgreSQL query function).
 */
async function withCluster(context, body) {
  const backends = await startBackends();
  const adminToken = randomToken();
  const dataDirs = [];
  const ports = [];
  for (let index = 0; index < nodeCount; index += 1) {
    dataDirs.push(makeTempDir(`vigil-chaos-node${index + 1}-`));
    ports.push(await freePort());
  }
  const env = {
    ...context.env,
    VIGIL_REDIS_URL: backends.redisUrl,
    VIGIL_DATABASE_URL: backends.databaseUrl,
    // Every node must read the secrets another stored.
    VIGIL_MASTER_KEY: randomBytes(32).toString('hex'),
  };
  const start = (index) =>
    startNode({ port: ports[index], dataDir: dataDirs[index], adminToken, extraEnv: env });
  const query = (text, values) => pgQuery(backends.databaseUrl, text, values);
  const cluster = { backends, ports, adminToken, nodes: [], start, query };
  try {
    let outcome;
    try {
      // All three at once: one applies the migrations, the others wait for it.
      cluster.nodes = await Promise.all(ports.map((_, index) => start(index)));
      outcome = await body(cluster);
    } finally {
      const stopped = await Promise.all(cluster.nodes.map((node) => stopNode(node)));
      // A node that did not stop cleanly is started and stopped once more: on open its log sends
      // PostgreSQL what its journal holds past the delivery mark.
      const unclean = stopped.flatMap(({ clean }, index) => (clean ? [] : [index]));
      if (outcome !== undefined && unclean.length > 0) {
        for (const index of unclean) await stopNode(await start(index));
        outcome.row.notes.push(`node ${unclean.map((index) => index + 1).join(', ')} did not stop cleanly`);
      }
    }
    let check = await checkPostgresDecisionLog(query, outcome.answered);
    if (check.error === undefined && check.lost > 0) {
      // Missing after a clean stop: one more start and stop of every node tells records delivered
      // late from lost ones.
      const afterStop = check.lost;
      const again = await Promise.all(ports.map((_, index) => start(index)));
      await Promise.all(again.map((node) => stopNode(node)));
      check = await checkPostgresDecisionLog(query, outcome.answered);
      if (check.error === undefined) {
        outcome.row.notes.push(
          `${afterStop} answered decisions were not in PostgreSQL when the nodes had stopped; ${afterStop - check.lost} of them were after one more start and stop`,
        );
      }
    }
    const { row } = outcome;
    if (check.error !== undefined) row.notes.push(check.error);
    else {
      row.lost = check.lost;
      row.duplicated = check.duplicated;
      row.checked = check.checked;
      row.decisionRows = check.rows;
      row.notes.push(
        `${check.checked} answered decisions checked in PostgreSQL (${check.rows} decision rows)`,
      );
      if (check.lost > 0) row.notes.push(`lost e.g. ${check.lostSamples.join(', ')}`);
      if (check.eventsDecidedTwice > 0) {
        row.notes.push(`${check.eventsDecidedTwice} event ids with two decisions (a retry decided anew)`);
      }
      row.eventsDecidedTwice = check.eventsDecidedTwice;
    }
    if (outcome.afterStop !== undefined) await outcome.afterStop(query);
    return row;
  } finally {
    await backends.stop();
    for (const dir of dataDirs) removeTempDir(dir);
  }
}

/** The tenant, set up through node 1; waits until nodes 2 and 3 decide under its policy too. */
async function setUpClusterTenant(cluster) {
  const tenant = await setUpTenant(cluster.ports[0], cluster.adminToken, { name: 'shop' });
  const [event] = generateEvents(1, 7);
  for (const port of cluster.ports.slice(1)) {
    const started = Date.now();
    for (let attempt = 0; ; attempt += 1) {
      const decision = await api(port, 'POST', '/v1/decisions', tenant.apiKey, {
        type: 'payment',
        id: `setup-check-${port}-${attempt}`,
        fields: event.fields,
        timeout_ms: 5000,
      });
      if (decision.status === 200 && decision.body.policy_version === tenant.policyVersion) break;
      if (Date.now() - started > 10_000) {
        throw new Error(`node on port ${port} does not serve the tenant's policy after 10 s`);
      }
      await sleep(50);
    }
  }
  return tenant;
}

/**
 * The load's rate over the three nodes, from the capacity of one embedded node: the three nodes,
 * Redis, PostgreSQL and the generator share the CPUs, and a decision on Redis and PostgreSQL costs
 * a node more CPU than an embedded one.
 */
const clusterShare = 0.2;
const clusterRps = (context) => Math.max(1, Math.round(context.capacity * clusterShare));

/** Polls `name` on every node until it is 0 on all of them; the time then, or null after `limitMs`. */
async function untilZero(cluster, name, limitMs) {
  const limit = Date.now() + limitMs;
  for (;;) {
    const values = await gauges(cluster, name);
    if (values.every((value) => value === 0)) return Date.now();
    if (Date.now() > limit) return null;
    await sleep(100);
  }
}

/** A gauge (no labels) from each running node's `/metrics`; null for a node that does not answer. */
async function gauges(cluster, name) {
  return Promise.all(
    cluster.nodes.map(async (node) => {
      try {
        const response = await fetch(`http://127.0.0.1:${node.port}/metrics`, {
          signal: AbortSignal.timeout(2000),
        });
        const line = (await response.text()).split('\n').find((text) => text.startsWith(`${name} `));
        return line === undefined ? null : Number(line.slice(name.length + 1));
      } catch {
        return null;
      }
    }),
  );
}

function clientNotes(kit, result, figures) {
  const notes = [];
  if (result.connection_failures > 0) {
    notes.push(
      `client saw ${result.connection_failures} connection failures, sent ${result.retried} of those requests to another node`,
    );
  }
  notes.push(`answers by node ${result.answers_by_node.join(' / ')}`);
  notes.push(...kit.unansweredNotes(figures));
  return notes;
}

// ---------------------------------------------------------------------------------------------
// The drills

/** SIGKILL node 3 under load; it is started again on its data dir `restartAfter` seconds later. */
function killDrill(context, kit) {
  return withCluster(context, async (cluster) => {
    const tenant = await setUpClusterTenant(cluster);
    const { warmup, baseline, afterKill, restartAfter } = context.seconds;
    const killAt = (warmup + baseline) * 1000;
    const total = killAt + afterKill * 1000;
    const victim = nodeCount - 1;
    const times = {};
    const load = await kit.runLoad(
      context,
      cluster.ports,
      [kit.stream('shop', tenant, [{ from: 0, to: total, rps: clusterRps(context) }])],
      total,
      [
        {
          at: killAt,
          run: async () => {
            times.kill = Date.now();
            await killNode(cluster.nodes[victim]);
            await sleep(restartAfter * 1000);
            times.restart = Date.now();
            cluster.nodes[victim] = await cluster.start(victim);
            times.ready = cluster.nodes[victim].readyAt;
          },
        },
      ],
    );
    const kill = load.offset(times.kill);
    const base = summarise(load.records, {
      streams: [0],
      from: warmup * 1000,
      to: killAt,
      deadlineMs: kit.deadlineMs,
    });
    const after = summarise(load.records, {
      streams: [0],
      from: kill,
      to: total,
      deadlineMs: kit.deadlineMs,
    });
    const row = kit.newRow('multi-node-kill', after);
    row.recovery = kit.recoveryFigure(load.records, { streams: [0], from: kill, to: total, baseline: base });
    const firstOk = firstOkAfter(load.records, [0], kill);
    row.notes.push(
      `figures from the kill of node ${victim + 1} to the end; it was restarted ${restartAfter} s after the kill, ready ${((times.ready - times.kill) / 1000).toFixed(1)} s after it`,
      firstOk === null
        ? 'no 200 after the kill'
        : `first 200 ${((firstOk - kill) / 1000).toFixed(2)} s after the kill`,
      `baseline p99 ${kit.ms(base.p99)} ms`,
      ...clientNotes(kit, load.result, after),
    );
    kit.addMachine(row, load.result);
    return { row, answered: load.answered[0] };
  });
}

/**
 * Redis shut down (SHUTDOWN SAVE: its data on disk, as a restarted Redis with persistence) for
 * `impact` seconds, then started again; then the counters are checked against the decision log:
 * for accounts of the load, one more decision's `txn_count_1h` must equal the number of decisions
 * of that account in PostgreSQL (every event counted once, also those counted locally while Redis
 * was down and replayed into it afterwards).
 */
function redisDownDrill(context, kit) {
  return withCluster(context, async (cluster) => {
    const tenant = await setUpClusterTenant(cluster);
    const { warmup, baseline, recovery, counterDown: impact } = context.seconds;
    const faultAt = (warmup + baseline) * 1000;
    const total = faultAt + impact * 1000 + recovery * 1000;
    const { redis } = cluster.backends;
    const times = {};
    const load = await kit.runLoad(
      context,
      cluster.ports,
      [kit.stream('shop', tenant, [{ from: 0, to: total, rps: clusterRps(context) }])],
      total,
      [
        {
          at: faultAt,
          run: async () => {
            times.down = Date.now();
            // The reply never comes: the server saves, closes every connection and exits.
            await rawCommand(redis.port, 'SHUTDOWN SAVE', 5000).catch(() => {});
            while (
              await rawCommand(redis.port, 'PING', 200).then(
                () => true,
                () => false,
              )
            )
              await sleep(20);
            times.gone = Date.now();
          },
        },
        {
          at: faultAt + impact * 1000,
          run: async () => {
            times.restart = Date.now();
            await redis.restart();
            times.up = Date.now();
            // Reconciled: every node has replayed what it counted locally into Redis.
            return untilZero(cluster, 'vigil_counter_fallback_queue_depth', 120_000);
          },
        },
      ],
    );
    const from = load.offset(times.down);
    const to = load.offset(times.restart);
    const base = summarise(load.records, {
      streams: [0],
      from: warmup * 1000,
      to: faultAt,
      deadlineMs: kit.deadlineMs,
    });
    const during = summarise(load.records, { streams: [0], from, to, deadlineMs: kit.deadlineMs });
    const after = summarise(load.records, {
      streams: [0],
      from: load.offset(times.up),
      to: total,
      deadlineMs: kit.deadlineMs,
    });
    const reconciledAt = load.actionResults[1];
    const row = kit.newRow('multi-node-redis-down', during);
    row.recovery = kit.recoveryFigure(load.records, {
      streams: [0],
      from: load.offset(times.up),
      to: total,
      baseline: base,
    });
    row.notes.push(
      `Redis down ${((times.up - times.down) / 1000).toFixed(1)} s (SHUTDOWN SAVE, then started again on its data)`,
      `degraded ${kit.pct(during.degradedPct)}% during, ${kit.pct(after.degradedPct)}% after it was back, ${kit.pct(base.degradedPct)}% before`,
      reconciledAt === null
        ? 'counter backlogs not replayed within 120 s of the restart'
        : `counter backlogs replayed into Redis ${((reconciledAt - times.up) / 1000).toFixed(1)} s after it was back`,
      `baseline p99 ${kit.ms(base.p99)} ms`,
      ...clientNotes(kit, load.result, during),
    );
    kit.addMachine(row, load.result);
    // Reconciled: once the backlogs are replayed, a new decision per sampled account sees every
    // decision of that account. Read now (nodes up), compared with PostgreSQL once they stop.
    const counted = await sampleCounts(cluster, tenant, 20);
    return {
      row,
      answered: load.answered[0],
      afterStop: async (query) => {
        const { rows } = await query(
          `SELECT body::json #>> '{event,fields,account_id}' AS account, count(*)::int AS n
             FROM decisions WHERE kind = 'decision' AND tenant_id = $1 GROUP BY 1`,
          [tenant.tenantId],
        );
        const stored = new Map(rows.map((entry) => [entry.account, entry.n]));
        const mismatches = counted.filter(({ account, value }) => stored.get(account) !== value);
        row.reconciled = { sampled: counted.length, exact: counted.length - mismatches.length };
        row.notes.push(
          `counters after recovery: ${counted.length - mismatches.length} of ${counted.length} sampled accounts have txn_count_1h = their decisions in PostgreSQL${
            mismatches.length > 0
              ? ` (e.g. ${mismatches
                  .slice(0, 3)
                  .map(({ account, value }) => `${account}: ${value} vs ${stored.get(account) ?? 0}`)
                  .join(', ')})`
              : ''
          }`,
        );
      },
    };
  });
}

/**
 * One decision for each of `count` accounts of the load, round-robin over the nodes, once no node
 * has a counter backlog left (polled up to 30 s); returns each account's `txn_count_1h`.
 */
async function sampleCounts(cluster, tenant, count) {
  const events = generateEvents(2000, generatorSeed);
  const accounts = [];
  for (const event of events) {
    if (!accounts.some((entry) => entry.account === event.fields.account_id)) {
      accounts.push({ account: event.fields.account_id, fields: event.fields });
    }
    if (accounts.length === count) break;
  }
  // The backlogs are replayed into Redis in the background: wait until no node has one left, and
  // then for decisions that are whole again (not degraded).
  await untilZero(cluster, 'vigil_counter_fallback_queue_depth', 120_000);
  const deadline = Date.now() + 30_000;
  const counted = [];
  for (const [index, { account, fields }] of accounts.entries()) {
    const port = cluster.ports[index % cluster.ports.length];
    for (let attempt = 0; ; attempt += 1) {
      const answer = await api(port, 'POST', '/v1/decisions', tenant.apiKey, {
        type: 'payment',
        id: `reconcile-${index}-${attempt}`,
        fields,
        timeout_ms: 5000,
      });
      if (answer.status === 200 && answer.body.degraded.length === 0) {
        const detail = await api(
          port,
          'GET',
          `/v1/manage/decisions/${answer.body.decision_id}`,
          tenant.apiKey,
        );
        counted.push({ account, value: detail.body?.features?.txn_count_1h });
        break;
      }
      if (Date.now() > deadline) {
        counted.push({ account, value: null });
        break;
      }
      await sleep(200);
    }
  }
  return counted;
}

/** PostgreSQL shut down for `impact` seconds, then started again on its data. */
function postgresDownDrill(context, kit) {
  return withCluster(context, async (cluster) => {
    const tenant = await setUpClusterTenant(cluster);
    const { warmup, baseline, recovery, logDown: impact } = context.seconds;
    const faultAt = (warmup + baseline) * 1000;
    const total = faultAt + impact * 1000 + recovery * 1000;
    const { postgres } = cluster.backends;
    const times = {};
    const load = await kit.runLoad(
      context,
      cluster.ports,
      [kit.stream('shop', tenant, [{ from: 0, to: total, rps: clusterRps(context) }])],
      total,
      [
        {
          at: faultAt,
          run: async () => {
            times.down = Date.now();
            await postgres.stop();
            times.gone = Date.now();
          },
        },
        {
          at: faultAt + impact * 1000 - 1000,
          run: () => gauges(cluster, 'vigil_decision_log_spooled_records'),
        },
        {
          at: faultAt + impact * 1000,
          run: async () => {
            times.restart = Date.now();
            await postgres.resume();
            times.up = Date.now();
            // How long until every node has delivered its spool.
            return untilZero(cluster, 'vigil_decision_log_spooled_records', 60_000);
          },
        },
      ],
    );
    const [, spooledNearEnd, drainedAt] = load.actionResults;
    const from = load.offset(times.down);
    const to = load.offset(times.restart);
    const base = summarise(load.records, {
      streams: [0],
      from: warmup * 1000,
      to: faultAt,
      deadlineMs: kit.deadlineMs,
    });
    const during = summarise(load.records, { streams: [0], from, to, deadlineMs: kit.deadlineMs });
    const row = kit.newRow('multi-node-postgres-down', during);
    row.recovery = kit.recoveryFigure(load.records, {
      streams: [0],
      from: load.offset(times.up),
      to: total,
      baseline: base,
    });
    row.notes.push(
      `PostgreSQL down ${((times.up - times.down) / 1000).toFixed(1)} s (fast shutdown, then started again)`,
      `spooled near the end of the outage, per node: ${spooledNearEnd.map((value) => value ?? '?').join(' / ')}`,
      drainedAt === null
        ? 'spools not delivered within 60 s of the restart'
        : `spools delivered ${((drainedAt - times.up) / 1000).toFixed(1)} s after PostgreSQL was back`,
      `baseline p99 ${kit.ms(base.p99)} ms`,
      ...clientNotes(kit, load.result, during),
    );
    kit.addMachine(row, load.result);
    return { row, answered: load.answered[0] };
  });
}

/** The drills, by name, with `kit`: the single-node harness's helpers (bench/chaos.mjs). */
export function multiNodeDrills(kit) {
  return {
    'multi-node-kill': (context) => killDrill(context, kit),
    'multi-node-redis-down': (context) => redisDownDrill(context, kit),
    'multi-node-postgres-down': (context) => postgresDownDrill(context, kit),
  };
}
