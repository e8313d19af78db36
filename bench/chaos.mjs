// `npm run chaos`: resilience drills against real Vigil nodes under load from a second process.
// What each drill does and what its columns mean: docs/RELIABILITY.md, "Chaos drills".
//
//   npm run chaos                          build, then every drill at full length (about 14 minutes)
//   node bench/chaos.mjs --quick           every drill about 5 times shorter, for development
//   node bench/chaos.mjs --only=sigkill    one drill (a comma-separated list works too)
//   node bench/chaos.mjs --only=multi-node the three multi-node drills (bench/chaos/multi-node.mjs)
//   node bench/chaos.mjs --capacity=8000   skip the capacity measurement, take this (req/s)
//   node bench/chaos.mjs --normal=0.5      normal load as a share of capacity (default 0.3)
//   node bench/chaos.mjs --env=NAME=value  a setting for every node started (repeatable)
//   node bench/chaos.mjs --windows         also print each stream's figures per second
//   node bench/chaos.mjs --list            the drills' names
//
// Each drill starts its own node (`apps/server/bundle/main.js`: fresh temporary data dir, free port,
// `VIGIL_IP_DATA=off`, a random admin token), sets up its tenants over HTTP, and runs an
// open-loop load from bench/chaos/load-generator.mjs in a child process while this process
// injects the fault on a timeline. It prints one row per drill, then the whole table in Markdown,
// and writes everything to bench/results/chaos-latest.json. Children are stopped by their PID
// when the run ends, fails or is interrupted.
//
// The multi-node drills (bench/chaos/multi-node.mjs) start three nodes on a private Redis and
// PostgreSQL of their own instead, with the load round-robin over the nodes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  checkDecisionLog,
  firstOkAfter,
  loadAnswered,
  loadRecords,
  recoverySeconds,
  summarise,
} from './chaos/analysis.mjs';
import { multiNodeDrillNames, multiNodeDrills } from './chaos/multi-node.mjs';
import {
  freePort,
  installExitHandlers,
  killNode,
  makeTempDir,
  randomToken,
  removeTempDir,
  root,
  runPlan,
  startGenerator,
  startNode,
  stopGenerator,
  stopNode,
} from './chaos/processes.mjs';
import { injectFault, pathologicalPolicy, probeFault, removeFault, setUpTenant } from './chaos/setup.mjs';

/** Every decision request carries this deadline (`timeout_ms`). */
const deadlineMs = 50;
/** The client gives up this long after a request was due: a bit above the deadline. */
const clientTimeoutMs = 75;
/** Open connections the generator may hold at once. */
const maxConnections = 1024;

// ---------------------------------------------------------------------------------------------
// Options

const drillNames = [
  'counter-slow',
  'counter-down',
  'decision-log-down',
  'noisy-tenant',
  'overload-2x',
  'overload-3x',
  'overload-4x',
  'pathological-rule',
  'sigkill',
  ...multiNodeDrillNames,
];

/**
 * Normal load as a share of the measured capacity. The capacity is the most the node and the
 * generator reach together in closed loop. Open loop at half of it (the default until 2026-11-26),
 * the generator's own CPU and event loop on the shared 2 cores put the baselines' p99 at 18-65 ms,
 * so the drills measured saturation rather than their faults; at 0.3 the baseline p99 was 8 ms.
 */
const defaultNormalShare = 0.3;

function parseOptions(argv) {
  const options = {
    quick: false,
    only: drillNames,
    capacity: undefined,
    normalShare: defaultNormalShare,
    env: {},
    windows: false,
  };
  for (const argument of argv) {
    if (argument === '--quick') options.quick = true;
    else if (argument === '--windows') options.windows = true;
    else if (argument === '--list') {
      console.log(drillNames.join('\n'));
      process.exit(0);
    } else if (argument.startsWith('--only=')) {
      options.only = argument
        .slice(7)
        .split(',')
        .filter(Boolean)
        .flatMap((name) => (name === 'multi-node' ? multiNodeDrillNames : [name]));
      const unknown = options.only.filter((name) => !drillNames.includes(name));
      if (unknown.length > 0)
        throw new Error(`unknown drill ${unknown.join(', ')}; one of: ${drillNames.join(', ')}`);
    } else if (/^--capacity=\d+$/.test(argument)) options.capacity = Number(argument.slice(11));
    else if (/^--normal=(0?\.\d+|1(\.0+)?)$/.test(argument)) options.normalShare = Number(argument.slice(9));
    else if (/^--env=[A-Z_][A-Z0-9_]*=/.test(argument)) {
      const [name, ...value] = argument.slice(6).split('=');
      options.env[name] = value.join('=');
    } else {
      throw new Error(
        `unknown argument: ${argument} (use --quick, --only=<drill>[,<drill>], --capacity=<req/s>, --normal=<share of capacity>, --env=NAME=value, --windows, --list)`,
      );
    }
  }
  // Seconds. Quick runs are about five times shorter; windows stay 1 s.
  const seconds = options.quick
    ? {
        capacityWarm: 2,
        capacityStep: 1,
        jitWarmup: 2,
        warmup: 1,
        baseline: 3,
        recovery: 6,
        counterSlow: 4,
        counterDown: 6,
        logDown: 12,
        noisy: 6,
        overload: 4,
        pathological: 4,
        afterKill: 8,
        restartAfter: 3,
      }
    : {
        capacityWarm: 3,
        capacityStep: 2,
        jitWarmup: 3,
        warmup: 2,
        baseline: 10,
        recovery: 15,
        counterSlow: 20,
        counterDown: 30,
        logDown: 60,
        noisy: 30,
        overload: 20,
        pathological: 20,
        afterKill: 25,
        restartAfter: 10,
      };
  return { ...options, seconds };
}

// ---------------------------------------------------------------------------------------------
// Running a drill: a node, a load, the decision-log check

/**
 * Starts a node, runs `body(holder)` and stops the node (a drill may replace `holder.node`).
 * `body` returns `{ row, answered }` where `answered` is [tenantId, [[eventId, decisionId]...]][]:
 * once the node is stopped the decision log is checked for those records. A node that does not
 * stop cleanly is started once more and stopped again, so that what it journalled is in SQLite.
 */
async function withNode(context, body) {
  const port = await freePort();
  const dataDir = makeTempDir('vigil-chaos-');
  const adminToken = randomToken();
  const start = () => startNode({ port, dataDir, adminToken, extraEnv: context.env });
  let outcome;
  try {
    const holder = { node: await start(), start };
    try {
      outcome = await body(holder);
    } finally {
      const { clean } = await stopNode(holder.node);
      if (!clean && outcome !== undefined) {
        holder.node = await start();
        await stopNode(holder.node);
      }
    }
    if (outcome.answered !== undefined) {
      let check = checkDecisionLog(dataDir, outcome.answered);
      if (check.error === undefined && check.lost > 0) {
        // Missing from SQLite after a clean stop: start and stop the node once more (on open the
        // log inserts the journal lines SQLite lacks) to tell records delivered late from lost ones.
        const afterStop = check.lost;
        const again = await start();
        await stopNode(again);
        check = checkDecisionLog(dataDir, outcome.answered);
        if (check.error === undefined) {
          outcome.row.notes.push(
            `${afterStop} answered decisions were not in SQLite when the node had stopped; ${afterStop - check.lost} of them were after one more start and stop`,
          );
        }
      }
      if (check.error !== undefined) outcome.row.notes.push(check.error);
      else {
        outcome.row.lost = check.lost;
        outcome.row.duplicated = check.duplicated;
        outcome.row.checked = check.checked;
        if (check.lost > 0) outcome.row.notes.push(`lost e.g. ${check.lostSamples.join(', ')}`);
      }
    }
    return outcome.row;
  } finally {
    removeTempDir(dataDir);
  }
}

function stream(name, tenant, segments) {
  return {
    name,
    apiKey: tenant.apiKey,
    segments,
    timeoutMs: deadlineMs,
    clientTimeoutMs,
    idPrefix: `${name}-${randomToken().slice(0, 6)}`,
  };
}

/**
 * Runs the streams for `durationMs` from the generator process while `actions` ({ at: ms from the
 * start, run }) run here on the same timeline. `target` is a node's port, or the ports of several
 * nodes (round-robin, with retries on another node; see bench/chaos/load-generator.mjs). Returns
 * the records, the generator's result, the actions' results and `offset(epochMs)`, which turns a
 * wall-clock time into ms from the start.
 */
async function runLoad(context, target, streams, durationMs, actions = []) {
  const ports = Array.isArray(target) ? target : [target];
  const port = ports[0];
  const generator = await startGenerator();
  const outDir = makeTempDir('vigil-chaos-load-');
  try {
    // A fresh node runs cold code: a closed-loop warm-up (16 connections, so never more than 16
    // requests queue) lets it compile its hot paths before the open-loop load, whose first
    // seconds would otherwise be a backlog of timeouts that says nothing about the drill.
    await runPlan(generator, {
      mode: 'closed',
      host: '127.0.0.1',
      port,
      ports,
      maxConnections,
      streams: [{ ...streams[0], segments: [], idPrefix: `${streams[0].idPrefix}-warm` }],
      steps: [{ connections: 16, ms: context.seconds.jitWarmup * 1000 }],
    });
    const startAt = Date.now() + 500;
    const plan = {
      mode: 'open',
      host: '127.0.0.1',
      port,
      ports,
      startAt,
      durationMs,
      maxConnections,
      streams,
      outDir,
    };
    const timeline = actions.map(async (action) => {
      await sleep(Math.max(0, startAt + action.at - Date.now()));
      return action.run();
    });
    const [result, ...actionResults] = await Promise.all([runPlan(generator, plan), ...timeline]);
    result.load_average = loadavg()[0];
    const records = loadRecords(outDir, result);
    const answered = streams.map((_, index) => loadAnswered(outDir, index));
    if (context.windows) printWindows(records, streams, durationMs);
    return {
      records,
      result,
      answered,
      actionResults,
      offset: (epochMs) => epochMs - result.origin_epoch_ms,
    };
  } finally {
    await stopGenerator(generator);
    removeTempDir(outDir);
  }
}

/** `--windows`: each stream's figures per 1 s window, to see a drill unfold. */
function printWindows(records, streams, durationMs) {
  for (const [index, { name }] of streams.entries()) {
    console.log(`  ${name}: s, requests, 200, p50, p99, 429, 503, degraded, timeouts, never sent`);
    for (let from = 0; from < durationMs; from += 1000) {
      const w = summarise(records, { streams: [index], from, to: from + 1000, deadlineMs });
      if (w.requests === 0) continue;
      console.log(
        `    ${from / 1000} ${w.requests} ${w.ok} ${ms(w.p50)} ${ms(w.p99)} ${w.status429} ${w.documented503} ${w.degraded} ${w.timeouts} ${w.unsent}`,
      );
    }
  }
}

/** A table row; figures not measured stay null. */
function newRow(drill, figures) {
  return {
    drill,
    requests: figures?.requests ?? null,
    withinPct: figures?.withinPct ?? null,
    rejectedPct: figures?.rejectedPct ?? null,
    degradedPct: figures?.degradedPct ?? null,
    p50: figures?.p50 ?? null,
    p99: figures?.p99 ?? null,
    rejectP99: figures?.rejectP99 ?? null,
    fiveXX: figures?.fiveXX ?? null,
    documented503: figures?.documented503 ?? null,
    lost: null,
    duplicated: null,
    recovery: null,
    notes: [],
    figures,
  };
}

function unansweredNotes(figures) {
  const notes = [];
  if (figures.timeouts > 0) notes.push(`${figures.timeouts} client timeouts (>${clientTimeoutMs} ms)`);
  if (figures.connectionErrors > 0) notes.push(`${figures.connectionErrors} connection errors`);
  if (figures.unsent > 0)
    notes.push(`${figures.unsent} never sent (no free connection within the client timeout)`);
  if (figures.rejectedWithoutRetryAfter > 0)
    notes.push(`${figures.rejectedWithoutRetryAfter} 429/503 without Retry-After`);
  if (figures.other > 0) notes.push(`${figures.other} other non-2xx`);
  return notes;
}

/**
 * Other processes on the machine take CPU from the node and the generator: say so when the load
 * average is well above the CPU count or the generator's event loop lagged.
 */
function addMachine(row, result) {
  row.machine = {
    load_average: result.load_average,
    generator_loop_delay_p99_ms: result.loop_delay_p99_ms,
    generator_loop_delay_max_ms: result.loop_delay_max_ms,
  };
  // The node's main thread, its log writer and the generator alone make a load average of about 3.
  if (result.load_average > cpus().length + 1.5 || result.loop_delay_p99_ms > 25) {
    row.notes.push(
      `machine busy: load average ${result.load_average.toFixed(1)} on ${cpus().length} CPUs, generator event-loop delay p99 ${result.loop_delay_p99_ms} ms`,
    );
  }
}

function recoveryFigure(records, { streams, from, to, baseline }) {
  const threshold = Math.max(2 * baseline.p99, 2);
  const seconds = recoverySeconds(records, {
    streams,
    from,
    to,
    deadlineMs,
    threshold,
    baselineDegradedPct: Number.isNaN(baseline.degradedPct) ? 0 : baseline.degradedPct,
  });
  return seconds ?? `>${Math.floor((to - from) / 1000)}`;
}

const answeredOf = (tenants, load) => tenants.map((tenant, index) => [tenant.tenantId, load.answered[index]]);

// ---------------------------------------------------------------------------------------------
// The drills

/** A fault on one component for `impact` seconds under normal load; figures over the fault. */
async function faultDrill(context, drill, fault, impactSeconds) {
  return withNode(context, async ({ node }) => {
    const tenant = await setUpTenant(node.port, node.adminToken, { name: 'shop' });
    const missing = await probeFault(node.port, node.adminToken, fault);
    if (missing !== null) {
      const row = newRow(drill);
      row.na = `feature missing: ${missing}`;
      return { row };
    }
    const { warmup, baseline, recovery } = context.seconds;
    const faultAt = (warmup + baseline) * 1000;
    const impact = impactSeconds * 1000;
    const total = faultAt + impact + recovery * 1000;
    let injected;
    const load = await runLoad(
      context,
      node.port,
      [stream('shop', tenant, [{ from: 0, to: total, rps: context.normalRps }])],
      total,
      [
        {
          at: faultAt,
          run: async () => {
            injected = await injectFault(node.port, node.adminToken, {
              ...fault,
              duration_seconds: impactSeconds,
            });
            injected.at = Date.now();
          },
        },
        {
          at: faultAt + impact,
          run: async () => removeFault(node.port, node.adminToken, injected?.id).then(() => Date.now()),
        },
      ],
    );
    const removedAt = load.actionResults[1];
    const from = load.offset(injected.at);
    const to = Math.min(load.offset(injected.at + impact), load.offset(removedAt));
    const base = summarise(load.records, { streams: [0], from: warmup * 1000, to: faultAt, deadlineMs });
    const during = summarise(load.records, { streams: [0], from, to, deadlineMs });
    const row = newRow(drill, during);
    if (injected.error !== undefined) row.notes.push(`fault refused: ${injected.error}`);
    row.recovery = recoveryFigure(load.records, { streams: [0], from: to, to: total, baseline: base });
    row.notes.push(`baseline p99 ${ms(base.p99)} ms`, ...unansweredNotes(during));
    addMachine(row, load.result);
    return { row, answered: answeredOf([tenant], load) };
  });
}

/** Two tenants: the quiet one alone, then with the noisy one at 20× its quota, then alone again. */
async function noisyTenantDrill(context) {
  return withNode(context, async ({ node }) => {
    const quota = Math.max(5, Math.round(context.capacity * 0.05));
    const quietRps = Math.round(context.capacity * 0.3);
    const quiet = await setUpTenant(node.port, node.adminToken, { name: 'quiet' });
    const noisy = await setUpTenant(node.port, node.adminToken, {
      name: 'noisy',
      rateLimit: { rps: quota, burst: quota },
    });
    const { warmup, baseline, recovery, noisy: impactSeconds } = context.seconds;
    const floodAt = (warmup + baseline) * 1000;
    const floodEnd = floodAt + impactSeconds * 1000;
    const total = floodEnd + recovery * 1000;
    const load = await runLoad(
      context,
      node.port,
      [
        stream('quiet', quiet, [{ from: 0, to: total, rps: quietRps }]),
        stream('noisy', noisy, [{ from: floodAt, to: floodEnd, rps: quota * 20 }]),
      ],
      total,
    );
    const base = summarise(load.records, { streams: [0], from: warmup * 1000, to: floodAt, deadlineMs });
    const during = summarise(load.records, { streams: [0], from: floodAt, to: floodEnd, deadlineMs });
    const flood = summarise(load.records, { streams: [1], from: floodAt, to: floodEnd, deadlineMs });
    const row = newRow('noisy-tenant', during);
    const increase = (100 * (during.p99 - base.p99)) / base.p99;
    row.notes.push(
      `quiet tenant ${quietRps}/s: p99 ${ms(during.p99)} ms vs ${ms(base.p99)} ms alone (${signed(increase)}%; target <= +10%)`,
      `noisy tenant quota ${quota}/s, sent ${quota * 20}/s: ${pct(flood.rejectedPct)}% rejected (429 ${flood.status429}), reject p99 ${ms(flood.rejectP99)} ms`,
    );
    if (flood.status429 === 0) row.notes.push('no 429: tenant quotas are not enforced yet');
    row.notes.push(...unansweredNotes(during));
    row.recovery = recoveryFigure(load.records, { streams: [0], from: floodEnd, to: total, baseline: base });
    addMachine(row, load.result);
    return { row, answered: answeredOf([quiet, noisy], load) };
  });
}

/** Normal load, then `factor` × capacity, then normal load again; figures over the overload. */
async function overloadDrill(context, factor) {
  const name = `overload-${factor}x`;
  return withNode(context, async ({ node }) => {
    const tenant = await setUpTenant(node.port, node.adminToken, { name: 'shop' });
    const { warmup, baseline, recovery, overload } = context.seconds;
    const overloadAt = (warmup + baseline) * 1000;
    const overloadEnd = overloadAt + overload * 1000;
    const total = overloadEnd + recovery * 1000;
    const offered = Math.round(context.capacity * factor);
    const load = await runLoad(
      context,
      node.port,
      [
        stream('shop', tenant, [
          { from: 0, to: overloadAt, rps: context.normalRps },
          { from: overloadAt, to: overloadEnd, rps: offered },
          { from: overloadEnd, to: total, rps: context.normalRps },
        ]),
      ],
      total,
      // The node's adaptive limit near the end of the overload, when its metrics say.
      [{ at: overloadEnd - 1000, run: () => nodeGauge(node.port, 'vigil_concurrency_limit') }],
    );
    const base = summarise(load.records, { streams: [0], from: warmup * 1000, to: overloadAt, deadlineMs });
    const during = summarise(load.records, { streams: [0], from: overloadAt, to: overloadEnd, deadlineMs });
    const row = newRow(name, during);
    const goodput = during.okWithin / during.seconds;
    const sent = (during.requests - during.unsent) / during.seconds;
    row.goodputPct = (100 * goodput) / context.capacity;
    row.notes.push(
      `goodput ${Math.round(goodput)}/s = ${pct(row.goodputPct)}% of capacity (target >= 90% at 3x)`,
      `offered ${offered}/s, sent ${Math.round(sent)}/s`,
    );
    const limit = load.actionResults[0];
    if (limit !== null) row.notes.push(`node concurrency limit ${limit} near the end of the overload`);
    if (during.documented503 === 0 && during.status429 === 0) row.notes.push('no 503/429: nothing was shed');
    row.notes.push(...unansweredNotes(during));
    row.recovery = recoveryFigure(load.records, {
      streams: [0],
      from: overloadEnd,
      to: total,
      baseline: base,
    });
    addMachine(row, load.result);
    return { row, answered: answeredOf([tenant], load) };
  });
}

/** A gauge without labels from the node's `/metrics`, or null when it is not there or unreachable. */
async function nodeGauge(port, name) {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
    const line = (await response.text()).split('\n').find((text) => text.startsWith(`${name} `));
    return line === undefined ? null : Number(line.slice(name.length + 1));
  } catch {
    return null;
  }
}

/** A tenant whose policy is CPU-heavy beside a normal one; figures of the normal tenant. */
async function pathologicalDrill(context) {
  return withNode(context, async ({ node }) => {
    const normal = await setUpTenant(node.port, node.adminToken, { name: 'normal' });
    const heavy = await setUpTenant(node.port, node.adminToken, {
      name: 'heavy',
      policy: pathologicalPolicy(),
    });
    const heavyCost = heavy.sample.latency_ms;
    const { warmup, baseline, recovery, pathological } = context.seconds;
    const heavyAt = (warmup + baseline) * 1000;
    const heavyEnd = heavyAt + pathological * 1000;
    const total = heavyEnd + recovery * 1000;
    const heavyRps = context.heavyRps;
    const load = await runLoad(
      context,
      node.port,
      [
        stream('normal', normal, [{ from: 0, to: total, rps: context.normalRps }]),
        stream('heavy', heavy, [{ from: heavyAt, to: heavyEnd, rps: heavyRps }]),
      ],
      total,
    );
    const base = summarise(load.records, { streams: [0], from: warmup * 1000, to: heavyAt, deadlineMs });
    const during = summarise(load.records, { streams: [0], from: heavyAt, to: heavyEnd, deadlineMs });
    const heavyFigures = summarise(load.records, { streams: [1], from: heavyAt, to: heavyEnd, deadlineMs });
    const row = newRow('pathological-rule', during);
    row.notes.push(
      `normal tenant p99 ${ms(during.p99)} ms vs ${ms(base.p99)} ms alone`,
      `heavy tenant ${heavyRps}/s (one decision alone took ${heavyCost} ms): ${pct(heavyFigures.withinPct)}% within deadline, p99 ${ms(heavyFigures.p99)} ms, ${pct(heavyFigures.ruleErrorsPct)}% with rule errors`,
    );
    if (heavyFigures.ruleErrors === 0) row.notes.push('no rule errors on the heavy tenant: no CPU guard yet');
    row.notes.push(...unansweredNotes(during));
    row.recovery = recoveryFigure(load.records, { streams: [0], from: heavyEnd, to: total, baseline: base });
    addMachine(row, load.result);
    return { row, answered: answeredOf([normal, heavy], load) };
  });
}

/** Normal load; SIGKILL the node, restart it at once on the same data dir and port. */
async function sigkillDrill(context) {
  return withNode(context, async (holder) => {
    const { node } = holder;
    const tenant = await setUpTenant(node.port, node.adminToken, { name: 'shop' });
    const { warmup, baseline, afterKill } = context.seconds;
    const killAt = (warmup + baseline) * 1000;
    const total = killAt + afterKill * 1000;
    const times = {};
    const load = await runLoad(
      context,
      node.port,
      [stream('shop', tenant, [{ from: 0, to: total, rps: context.normalRps }])],
      total,
      [
        {
          at: killAt,
          run: async () => {
            times.kill = Date.now();
            await killNode(holder.node);
            times.restart = Date.now();
            holder.node = await holder.start();
            times.ready = holder.node.readyAt;
          },
        },
      ],
    );
    const kill = load.offset(times.kill);
    const base = summarise(load.records, { streams: [0], from: warmup * 1000, to: killAt, deadlineMs });
    const all = summarise(load.records, { streams: [0], from: warmup * 1000, to: total, deadlineMs });
    const row = newRow('sigkill', all);
    const firstOk = firstOkAfter(load.records, [0], kill);
    row.recovery = recoveryFigure(load.records, { streams: [0], from: kill, to: total, baseline: base });
    row.notes.push(
      `restarted node ready ${((times.ready - times.kill) / 1000).toFixed(1)} s after the kill`,
      firstOk === null
        ? 'no 200 after the kill'
        : `first 200 ${((firstOk - kill) / 1000).toFixed(1)} s after the kill`,
      `baseline p99 ${ms(base.p99)} ms`,
      ...unansweredNotes(all),
    );
    addMachine(row, load.result);
    return { row, answered: answeredOf([tenant], load) };
  });
}

const drills = {
  'counter-slow': (context) =>
    faultDrill(
      context,
      'counter-slow',
      { component: 'counter_store', kind: 'latency', latency_ms: 80, rate: 1 },
      context.seconds.counterSlow,
    ),
  'counter-down': (context) =>
    faultDrill(
      context,
      'counter-down',
      { component: 'counter_store', kind: 'outage' },
      context.seconds.counterDown,
    ),
  'decision-log-down': (context) =>
    faultDrill(
      context,
      'decision-log-down',
      { component: 'decision_log', kind: 'outage' },
      context.seconds.logDown,
    ),
  'noisy-tenant': noisyTenantDrill,
  'overload-2x': (context) => overloadDrill(context, 2),
  'overload-3x': (context) => overloadDrill(context, 3),
  'overload-4x': (context) => overloadDrill(context, 4),
  'pathological-rule': pathologicalDrill,
  sigkill: sigkillDrill,
  ...multiNodeDrills({
    runLoad,
    stream,
    newRow,
    recoveryFigure,
    unansweredNotes,
    addMachine,
    ms: (value) => ms(value),
    pct: (value) => pct(value),
    deadlineMs,
  }),
};

// ---------------------------------------------------------------------------------------------
// Capacity: a closed-loop ramp on its own node

async function measureCapacity(context) {
  return withNode(context, async ({ node }) => {
    const tenant = await setUpTenant(node.port, node.adminToken, { name: 'capacity' });
    const { capacityWarm, capacityStep } = context.seconds;
    const generator = await startGenerator();
    try {
      const { steps } = await runPlan(generator, {
        mode: 'closed',
        host: '127.0.0.1',
        port: node.port,
        maxConnections,
        streams: [stream('capacity', tenant, [])],
        steps: [
          { connections: 32, ms: capacityWarm * 1000, warmup: true },
          { connections: 8, ms: capacityStep * 1000 },
          { connections: 32, ms: capacityStep * 1000 },
          { connections: 128, ms: capacityStep * 1000 },
        ],
      });
      const measured = steps.filter((step) => !step.warmup);
      const capacity = Math.max(...measured.map((step) => step.ok_rps));
      return { row: { capacity, steps } };
    } finally {
      await stopGenerator(generator);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Reporting

const ms = (value) =>
  value === null || Number.isNaN(value)
    ? '-'
    : value === Number.POSITIVE_INFINITY
      ? `>${clientTimeoutMs}`
      : value.toFixed(2);
const pct = (value) => (value === null || Number.isNaN(value) ? '-' : value.toFixed(1));
const signed = (value) => (Number.isFinite(value) ? `${value >= 0 ? '+' : ''}${value.toFixed(0)}` : 'n/a');
const count = (value) => (value === null || value === undefined ? '-' : String(value));

const columns = [
  'drill',
  'requests',
  '% within deadline',
  '% rejected',
  '% degraded',
  'p50 ms',
  'p99 ms',
  'reject p99 ms',
  '5xx',
  '503',
  'lost',
  'dup',
  'recovery s',
  'notes',
];

function cells(row) {
  if (row.na !== undefined || row.failed !== undefined) {
    return [row.drill, ...columns.slice(1, -1).map(() => '-'), row.na ?? `FAILED: ${row.failed}`];
  }
  return [
    row.drill,
    count(row.requests),
    pct(row.withinPct),
    pct(row.rejectedPct),
    pct(row.degradedPct),
    ms(row.p50),
    ms(row.p99),
    ms(row.rejectP99),
    count(row.fiveXX),
    count(row.documented503),
    count(row.lost),
    count(row.duplicated),
    count(row.recovery),
    row.notes.join('; '),
  ];
}

/** The table in Markdown, padded as Biome formats Markdown tables, so it pastes into the docs as is. */
function markdownTable(rows) {
  const escapeCell = (text) => String(text).replaceAll('|', '\\|');
  const body = rows.map((row) => cells(row).map(escapeCell));
  const widths = columns.map((name, index) =>
    Math.max(3, name.length, ...body.map((line) => line[index].length)),
  );
  const line = (values) => `| ${values.map((value, index) => value.padEnd(widths[index])).join(' | ')} |`;
  return [line(columns), line(widths.map((width) => '-'.repeat(width))), ...body.map(line)].join('\n');
}

function printRow(row) {
  const values = cells(row);
  console.log(
    `  ${columns
      .map((name, index) => `${name}: ${values[index]}`)
      .slice(1)
      .join(' | ')}`,
  );
}

// ---------------------------------------------------------------------------------------------

async function main() {
  installExitHandlers('chaos');
  const options = parseOptions(process.argv.slice(2));
  const context = { seconds: options.seconds, env: options.env, windows: options.windows };
  const startedAt = Date.now();
  console.log(`chaos drills${options.quick ? ' (--quick)' : ''}: ${options.only.join(', ')}`);
  if (options.capacity === undefined) {
    console.log('capacity: closed-loop ramp (8, 32, 128 connections) ...');
    const { capacity, steps } = await measureCapacity(context);
    context.capacity = capacity;
    context.capacitySteps = steps;
    console.log(
      `  ${steps
        .filter((step) => !step.warmup)
        .map((step) => `${step.connections} conns: ${step.ok_rps}/s`)
        .join(', ')} -> capacity ${capacity} req/s`,
    );
  } else {
    context.capacity = options.capacity;
    console.log(`capacity: ${options.capacity} req/s (given)`);
  }
  if (!(context.capacity > 0)) throw new Error('the capacity measurement found no successful decision');
  context.normalRps = Math.max(1, Math.round(context.capacity * options.normalShare));
  // Enough that the heavy tenant's evaluations would take most of a core without a CPU guard.
  context.heavyRps = 40;
  const rows = [];
  for (const name of options.only) {
    const drillStarted = Date.now();
    console.log(`${name} ...`);
    let row;
    try {
      row = await drills[name](context);
    } catch (error) {
      row = newRow(name);
      row.failed = error instanceof Error ? error.message.split('\n')[0] : String(error);
      process.stderr.write(`${name} failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    }
    rows.push(row);
    printRow(row);
    console.log(`  (${Math.round((Date.now() - drillStarted) / 1000)} s)`);
  }
  const table = markdownTable(rows);
  console.log(
    `\ncapacity ${context.capacity} req/s, normal load ${context.normalRps} req/s, deadline ${deadlineMs} ms, client timeout ${clientTimeoutMs} ms, ${cpus().length} CPUs, node ${process.version}, ${Math.round((Date.now() - startedAt) / 1000)} s\n`,
  );
  console.log(table);
  const resultsDir = join(root, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(
    join(resultsDir, 'chaos-latest.json'),
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        quick: options.quick,
        capacity: context.capacity,
        capacity_steps: context.capacitySteps,
        normal_rps: context.normalRps,
        deadline_ms: deadlineMs,
        client_timeout_ms: clientTimeoutMs,
        seconds: options.seconds,
        rows: rows.map(({ figures, ...row }) => ({ ...row, figures })),
        table,
      },
      (_key, value) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : value),
      2,
    )}\n`,
  );
  console.log('\nwrote bench/results/chaos-latest.json');
  return rows.some((row) => row.failed !== undefined) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`\nchaos FAILED: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
