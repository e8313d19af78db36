// Benchmarks `POST /v1/decisions`: Vigil against a bare Fastify 5 server, loaded by wrk.
// What it measures and why is in docs/BENCHMARKS.md.
//
//   npm run bench                      build, then one full run
//   node bench/run.mjs --quick         short durations, a smoke run
//   node bench/run.mjs --runs=3        three full runs; the summary is the median of each figure
//   node bench/run.mjs --profile       also record a CPU profile of Vigil (slower; see the docs)
//   node bench/run.mjs --rules-only    only the rule-evaluation benchmark (bench/rules.mjs)
//   node bench/run.mjs --http-only     only the HTTP benchmark
//   node bench/run.mjs --components-only
//                                      only the embedded counters and the 1M-entry list import (issue 4)
//   node bench/run.mjs --distributed-only
//                                      only the full configuration, embedded and distributed
//   node bench/run.mjs --isolation-only
//                                      only the noisy-tenant isolation measurement (issue 5), with wrk
//   node bench/run.mjs --alternating-only
//                                      Vigil (no policy) and bare Fastify loaded in turns: 6 pairs, median ratio
//
// The distributed scenario (issue 6) is the full reference configuration on one node with
// VIGIL_REDIS_URL and VIGIL_DATABASE_URL: a private `redis-server` and a private PostgreSQL
// (bench/backends.mjs: initdb in a temporary directory, fsync off, both on free ports, stopped by
// PID and removed afterwards), measured in the same run as the embedded node (SQLite and memory).
//
// By default the rule-evaluation benchmark runs first, in its own process (bench/rules.mjs), then
// the HTTP benchmark: Vigil without a policy, Vigil with the reference policy published
// (bench/reference-policy.mjs, the rules that read no feature), Vigil with the full reference
// configuration (the 30 rules, the 2 list rules, 8 features and 3 filled lists, loaded with varied
// keys by bench/decision-keys.lua), the same on Redis and PostgreSQL (above), and the bare server.
//
// The servers run one after the other, never both at once, each as its own `node` process.
// Every child is stopped by its PID when the benchmark ends, fails or is interrupted.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pgQuery, startBackends } from './backends.mjs';
import {
  featureDefinitions,
  featureTypes,
  fullHttpPolicy,
  httpPolicy,
  listDefinitions,
  prng,
  eventTypeSchema as referenceSchema,
} from './reference-policy.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const benchDir = join(root, 'bench');
const resultsDir = join(benchDir, 'results');
const luaScript = join(benchDir, 'decision.lua');
const keysLuaScript = join(benchDir, 'decision-keys.lua');

const targets = { ratio: 0.6, readyMs: 1500, halfLoadP99Ms: 5 };
/** Issue 4: the decision API with the full reference configuration against the bare route. */
const fullTargets = { ratio: 0.4, halfLoadP99Ms: 5 };
/** Issue 6: one node on Redis and PostgreSQL against one embedded node, same full configuration. */
const distributedTargets = { ratio: 0.5 };
/**
 * The distributed node's Redis command timeout (default 50 ms). Here Redis shares the CPUs with the
 * node under test, wrk and PostgreSQL; at saturation a command often waits longer than 50 ms for
 * Redis to be scheduled, and the node would then count locally (answers `degraded: ["features"]`),
 * so the figure would be the fallback's, not Redis's. Degraded answers are still counted.
 */
const distributedRedisTimeoutMs = 1000;
/** The event body is this size for every request, with every id. */
const bodyBytes = 588;

// ---------------------------------------------------------------------------------------------
// Options

function parseOptions(argv) {
  const options = {
    quick: false,
    runs: 1,
    profile: false,
    rules: true,
    http: true,
    distributedOnly: false,
    isolationOnly: false,
    alternatingOnly: false,
    components: true,
  };
  for (const argument of argv) {
    if (argument === '--quick') options.quick = true;
    else if (argument === '--profile') options.profile = true;
    else if (argument === '--rules-only') {
      options.http = false;
      options.components = false;
    } else if (argument === '--http-only') {
      options.rules = false;
      options.components = false;
    } else if (argument === '--components-only') {
      options.rules = false;
      options.http = false;
    } else if (argument === '--distributed-only') {
      options.distributedOnly = true;
      options.rules = false;
      options.components = false;
    } else if (argument === '--isolation-only') {
      options.isolationOnly = true;
      options.rules = false;
      options.components = false;
    } else if (argument === '--alternating-only') {
      options.alternatingOnly = true;
      options.rules = false;
      options.components = false;
    } else if (/^--runs=\d+$/.test(argument)) options.runs = Math.max(1, Number(argument.slice(7)));
    else {
      throw new Error(
        `unknown argument: ${argument} (use --quick, --runs=N, --profile, --rules-only, --http-only, --components-only, --distributed-only, --isolation-only, --alternating-only)`,
      );
    }
  }
  if (!options.rules && !options.http && !options.components)
    throw new Error('--rules-only, --http-only and --components-only exclude each other');
  if (options.distributedOnly && !options.http)
    throw new Error('--rules-only and --distributed-only exclude each other');
  const seconds = options.quick
    ? { warmup: 1, measure: 3, probe: 1, half: 3 }
    : { warmup: 3, measure: 10, probe: 3, half: 10 };
  return { ...options, seconds, connections: 50, thinkMs: 10 };
}

// ---------------------------------------------------------------------------------------------
// The event

/**
 * A payment event of exactly `bodyBytes` bytes once `@ID@` is replaced by an id as the wrk script
 * writes it ("<5-char tag>-<2-digit thread>-<9-digit counter>", 18 characters).
 */
const idWidth = 18;
const eventSchema = {
  fields: {
    account_id: { type: 'string', required: true },
    amount: { type: 'number' },
    currency: { type: 'string' },
    ip: { type: 'ip' },
    device_id: { type: 'string' },
    email: { type: 'email' },
    country: { type: 'string' },
    channel: { type: 'enum', values: ['web', 'app'] },
    phone: { type: 'phone' },
    card_bin: { type: 'string' },
    merchant_id: { type: 'string' },
    session_id: { type: 'string' },
    user_agent: { type: 'string' },
  },
};

function bodyTemplate() {
  const event = {
    type: 'payment',
    id: '@ID@',
    timestamp: '2026-11-24T12:00:00.000Z',
    fields: {
      account_id: 'acct-0001234567',
      amount: 129.5,
      currency: 'EUR',
      ip: '203.0.113.7',
      device_id: 'dev-9f8e7d6c5b4a39281706',
      email: 'jane.doe@example.com',
      country: 'FR',
      channel: 'web',
      phone: '+33612345678',
      card_bin: '411111',
      merchant_id: 'm-4821-shop-eu',
      session_id: 'sess-6b1f0c2e9d8a47f3b5e2c1d0a9f8e7d6',
      user_agent: '',
    },
    timeout_ms: 100,
  };
  const userAgent =
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0 (bench padding ............................................................)';
  const fixed = Buffer.byteLength(JSON.stringify(event)) - 4 + idWidth;
  event.fields.user_agent = userAgent.slice(0, bodyBytes - fixed);
  const template = JSON.stringify(event);
  if (Buffer.byteLength(template) - 4 + idWidth !== bodyBytes) {
    throw new Error('the event template does not come to the intended body size');
  }
  return template;
}

/**
 * The body of the run with the reference policy: a payment event of the same `bodyBytes` bytes that
 * carries every field the HTTP policy's rules read (bench/reference-policy.mjs); to fit, it drops
 * the three fields no rule reads (`card_bin`, `merchant_id`, `session_id`). Two rules hit
 * (`bin-country-mismatch`, `new-device-amount`), so the verdict is `challenge`.
 */
function policyBodyTemplate() {
  const event = {
    type: 'payment',
    id: '@ID@',
    timestamp: '2026-11-24T12:00:00.000Z',
    fields: {
      account_id: 'acct-0001234567',
      amount: 629.5,
      currency: 'EUR',
      ip: '203.0.113.7',
      device_id: 'dev-9f8e7d6c5b4a39281706',
      email: 'jane.doe@example.com',
      country: 'FR',
      bin_country: 'DE',
      channel: 'web',
      account_age_days: 412,
      is_new_device: true,
      failed_logins_1h: 1,
      email_verified: true,
      merchant_category: '5732',
      recent_countries: ['FR', 'DE'],
      shipping_country: 'FR',
      phone: '+33612345678',
      user_agent: '',
    },
    timeout_ms: 100,
  };
  const userAgent =
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0 (bench padding ............................................................)';
  const fixed = Buffer.byteLength(JSON.stringify(event)) - 4 + idWidth;
  if (fixed > bodyBytes) throw new Error('the policy event does not fit in the intended body size');
  event.fields.user_agent = userAgent.slice(0, bodyBytes - fixed);
  const template = JSON.stringify(event);
  if (Buffer.byteLength(template) - 4 + idWidth !== bodyBytes) {
    throw new Error('the policy event template does not come to the intended body size');
  }
  return template;
}

// ---------------------------------------------------------------------------------------------
// The full reference configuration: varied keys, filled lists

/**
 * How the full-configuration load spreads its keys (bench/decision-keys.lua): 100,000 accounts
 * (50,000 IP addresses in common use), and 1% of requests from known bad actors: half from the
 * blocked range 185.220.100.0/22, half from one of 20,000 actors whose device and e-mail are listed.
 */
const keySpread = { accounts: 100_000, badShare: 0.01, badActors: 20_000 };

/** The key formats of bench/decision-keys.lua, by index; each has a fixed width. */
const keys = {
  account: (n) => `acct-${String(n).padStart(10, '0')}`,
  email: (n) => `u${String(n).padStart(9, '0')}@example.com`,
  device: (n) => `dev-${String(n).padStart(20, '0')}`,
  card: (n) => `card-${String(n).padStart(12, '0')}`,
  /** Four octets from 100 to 254: a bijection of [0, 155^4), so every index has its own address. */
  ip: (n) => {
    let x = (n * 48271) % 577_200_625;
    const octets = [];
    for (let index = 0; index < 4; index += 1) {
      octets.unshift(100 + (x % 155));
      x = Math.floor(x / 155);
    }
    return octets.join('.');
  },
};

/** The placeholders of the full-configuration body, with a value of each one's width. */
const keySamples = {
  '@ID@': 'w0001-01-000000001',
  '@ACCOUNT@': keys.account(0),
  '@EMAIL@': keys.email(0),
  '@IP@': keys.ip(0),
  '@DEVICE@': keys.device(0),
  '@CARD@': keys.card(0),
};

/** The template with every placeholder replaced (`values`: placeholder → value). */
function fillTemplate(template, values) {
  let body = template;
  for (const [placeholder, value] of Object.entries(values)) body = body.replace(placeholder, value);
  return body;
}

/**
 * The body of the full-configuration run: the policy run's event with the keys as placeholders
 * that bench/decision-keys.lua fills per request, plus `card_id` (the card features' key). It is
 * `bodyBytes` bytes with every key; the user agent is shortened to fit.
 */
function fullBodyTemplate() {
  const event = {
    type: 'payment',
    id: '@ID@',
    timestamp: '2026-11-24T12:00:00.000Z',
    fields: {
      account_id: '@ACCOUNT@',
      amount: 629.5,
      currency: 'EUR',
      ip: '@IP@',
      device_id: '@DEVICE@',
      card_id: '@CARD@',
      email: '@EMAIL@',
      country: 'FR',
      bin_country: 'DE',
      channel: 'web',
      account_age_days: 412,
      is_new_device: true,
      failed_logins_1h: 1,
      email_verified: true,
      merchant_category: '5732',
      recent_countries: ['FR', 'DE'],
      shipping_country: 'FR',
      phone: '+33612345678',
      user_agent: '',
    },
    timeout_ms: 100,
  };
  const userAgent =
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0 (bench padding ............................................................)';
  const fixed = Buffer.byteLength(fillTemplate(JSON.stringify(event), keySamples));
  // The keys and `card_id` leave about 30 bytes of user agent (a cut one: no rule reads more).
  if (fixed + 24 > bodyBytes) throw new Error('the full-configuration event does not fit in the body size');
  event.fields.user_agent = userAgent.slice(0, bodyBytes - fixed);
  const template = JSON.stringify(event);
  if (Buffer.byteLength(fillTemplate(template, keySamples)) !== bodyBytes) {
    throw new Error('the full-configuration template does not come to the intended body size');
  }
  return template;
}

/**
 * The entries of the 3 lists, from a seeded PRNG (the same on every run):
 * - `blocked_ips`: 40,000 single addresses and 10,000 CIDR ranges (/16 to /29, mostly /24) with a
 *   first octet from 11 to 99, so ordinary traffic (octets 100 to 254) meets them only through the
 *   bad share; plus 185.220.100.0/22, the range that share comes from. Addresses expire in 30 days.
 * - `blocked_devices_emails`: the device and the e-mail of each of the 20,000 bad actors.
 * - `allowed_accounts`: every tenth account (10,000): a tenth of the blocked-range traffic passes.
 */
function listEntries() {
  const random = prng(20261126);
  const octet = (low, high) => low + Math.floor(random() * (high - low + 1));
  const addresses = new Set();
  while (addresses.size < 40_000) {
    addresses.add(`${octet(11, 99)}.${octet(0, 255)}.${octet(0, 255)}.${octet(1, 254)}`);
  }
  const prefixes = [16, 18, 20, 21, 22, 23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 25, 26, 27, 28, 29];
  const ranges = new Set(['185.220.100.0/22']);
  while (ranges.size < 10_001) {
    const prefix = prefixes[Math.floor(random() * prefixes.length)];
    const address = (octet(11, 99) * 2 ** 24 + octet(0, 255) * 2 ** 16 + octet(0, 255) * 2 ** 8) >>> 0;
    const network = (address & (~0 << (32 - prefix))) >>> 0;
    ranges.add(`${[24, 16, 8, 0].map((shift) => (network >>> shift) & 255).join('.')}/${prefix}`);
  }
  const notes = ['proxy', 'hosting', 'chargeback', 'botnet', 'tor exit'];
  const blockedIps = [
    ...[...addresses].map((value, index) => ({
      value,
      ttl_seconds: 30 * 86_400,
      note: `${notes[index % notes.length]} (case ${100_000 + index})`,
    })),
    ...[...ranges].map((value, index) => ({ value, note: notes[index % notes.length] })),
  ];
  const blockedDevicesEmails = [];
  for (let actor = 0; actor < keySpread.badActors; actor += 1) {
    blockedDevicesEmails.push(
      { value: keys.device(2 * keySpread.accounts + actor), note: `device of fraud case ${actor}` },
      { value: keys.email(keySpread.accounts + actor), note: `e-mail of fraud case ${actor}` },
    );
  }
  const allowedAccounts = [];
  for (let account = 7; account < keySpread.accounts; account += 10) {
    allowedAccounts.push({ value: keys.account(account), note: 'vetted' });
  }
  return {
    blocked_ips: blockedIps,
    blocked_devices_emails: blockedDevicesEmails,
    allowed_accounts: allowedAccounts,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked and stopped by its PID, also on errors and signals.

const children = new Set();
const tempDirs = new Set();

function startServer(name, args, env) {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-8192);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  children.add(child);
  exited.then(() => children.delete(child));
  return { name, child, exited, output: () => output };
}

async function stopServer(server) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGTERM');
  const stopped = await Promise.race([server.exited, sleep(10_000, 'timeout')]);
  if (stopped === 'timeout') {
    server.child.kill('SIGKILL');
    await server.exited;
  }
}

function killEverything() {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping the servers\n`);
    process.exit(130);
  });
}

function makeTempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Status of `GET path`, or 0 when nothing answers yet; plain node:http, so polling is cheap. */
function getStatus(port, path) {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

/** Polls `/readyz` every 5 ms; the time is counted from just before the spawn. */
async function waitReady(server, port, spawnedAt, limitMs = 20_000) {
  let exited = false;
  server.exited.then(() => {
    exited = true;
  });
  while (performance.now() - spawnedAt < limitMs) {
    if (exited) throw new Error(`${server.name} exited before it was ready:\n${server.output()}`);
    if ((await getStatus(port, '/readyz')) === 200) return performance.now() - spawnedAt;
    await sleep(5);
  }
  throw new Error(`${server.name} was not ready within ${limitMs} ms:\n${server.output()}`);
}

/** User + system CPU time of a process in ms, from /proc (Linux). */
const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// Vigil's control plane

async function api(port, method, path, token, body) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return { status: response.status, headers: response.headers, body: text === '' ? null : JSON.parse(text) };
}

/**
 * A tenant, a `decide`+`manage` key and the `payment` event type; with `policy`, the reference
 * schema and the policy, saved and published (after `beforePolicy(apiKey)`, which sets up what the
 * policy reads). Returns the API key and the published version.
 */
async function setUpTenant(port, adminToken, policy, beforePolicy) {
  const tenant = await api(port, 'POST', '/v1/admin/tenants', adminToken, { name: 'bench' });
  const key = await api(port, 'POST', `/v1/admin/tenants/${tenant.body.id}/keys`, adminToken, {
    scopes: ['decide', 'manage'],
  });
  const apiKey = key.body.api_key;
  const schema = policy === undefined ? eventSchema : referenceSchema;
  await api(port, 'PUT', '/v1/manage/event-types/payment', apiKey, schema);
  if (policy === undefined) return { apiKey, policyVersion: null };
  if (beforePolicy !== undefined) await beforePolicy(apiKey);
  const saved = await api(port, 'POST', '/v1/manage/policies/payment/versions', apiKey, policy);
  const policyVersion = saved.body.version;
  await api(port, 'POST', `/v1/manage/policies/payment/versions/${policyVersion}/publish`, apiKey, {});
  return { apiKey, policyVersion };
}

/** The policy must decide the check event: its version, the expected hits, no rule errors. */
async function checkPolicyDecision(port, apiKey, template, policyVersion) {
  const expectedHits = ['bin-country-mismatch', 'new-device-amount'];
  // A published change reaches the serving path within 1 s (SPEC §4): poll until it does.
  const started = performance.now();
  for (let attempt = 0; ; attempt += 1) {
    const body = JSON.parse(template.replace('@ID@', `pchk-00-${String(attempt).padStart(9, '0')}`));
    const { body: decision } = await api(port, 'POST', '/v1/decisions', apiKey, body);
    const hits = decision.rules.map((hit) => hit.id).join(',');
    if (decision.policy_version === policyVersion) {
      if (hits !== expectedHits.join(',') || decision.verdict !== 'challenge' || decision.errors.length > 0) {
        throw new Error(`unexpected decision under the reference policy: ${JSON.stringify(decision)}`);
      }
      return decision;
    }
    if (performance.now() - started > 5000) {
      throw new Error(
        `policy version ${policyVersion} is not serving after 5 s: ${JSON.stringify(decision)}`,
      );
    }
    await sleep(50);
  }
}

/** One decision by hand before the load: the body is valid, and a repeated id is a replay. */
async function checkDecision(port, apiKey, template) {
  const body = template.replace('@ID@', 'check-00-000000001');
  const first = await api(port, 'POST', '/v1/decisions', apiKey, JSON.parse(body));
  const again = await api(port, 'POST', '/v1/decisions', apiKey, JSON.parse(body));
  if (typeof first.body.verdict !== 'string' || first.headers.get('idempotent-replay') === 'true') {
    throw new Error(`unexpected first decision: ${JSON.stringify(first.body)}`);
  }
  if (again.headers.get('idempotent-replay') !== 'true') {
    throw new Error(
      'a repeated event id was not answered as a replay: the unique ids matter less than assumed',
    );
  }
  return first.body;
}

/** The CEL type a feature's value has in rules (docs/FEATURES.md). */
const featureValueType = (definition) =>
  definition.aggregation === 'count' || definition.aggregation === 'distinct' ? 'int' : 'double';

/** Every feature the rules read (`featureTypes`, as bench/rules.mjs declares them) is defined, alike. */
function checkFeatureDefinitions() {
  for (const [name, type] of Object.entries(featureTypes)) {
    const definition = featureDefinitions[name];
    if (definition === undefined || featureValueType(definition) !== type) {
      throw new Error(`feature ${name} (${type}) read by the rules has no matching definition`);
    }
  }
}

/**
 * The 8 features, then the 3 lists, each filled with one bulk import (JSON); waits until every
 * feature is `ready`. Returns the imported counts and the time the imports took.
 */
async function setUpFeaturesAndLists(port, apiKey, entries) {
  for (const [name, definition] of Object.entries(featureDefinitions)) {
    await api(port, 'PUT', `/v1/manage/features/${name}`, apiKey, definition);
  }
  const imported = {};
  const started = performance.now();
  for (const [name, definition] of Object.entries(listDefinitions)) {
    await api(port, 'PUT', `/v1/manage/lists/${name}`, apiKey, definition);
    const { body } = await api(port, 'POST', `/v1/manage/lists/${name}/entries`, apiKey, entries[name]);
    if (body.rejected.length > 0 || body.added !== entries[name].length) {
      throw new Error(
        `list ${name}: ${body.added} of ${entries[name].length} entries added, rejected: ${JSON.stringify(body.rejected.slice(0, 5))}`,
      );
    }
    imported[name] = body.added;
  }
  const importMs = performance.now() - started;
  // A new feature is backfilled from stored history (none here); wait until each one is ready.
  for (let waited = 0; ; waited += 50) {
    const { body } = await api(port, 'GET', '/v1/manage/features', apiKey);
    const statuses = body.features.map((feature) => `${feature.name}:${feature.status}`);
    if (body.features.some((feature) => feature.status === 'failed')) {
      throw new Error(`a feature failed: ${statuses.join(', ')}`);
    }
    if (
      body.features.length === Object.keys(featureDefinitions).length &&
      body.features.every((feature) => feature.status === 'ready')
    ) {
      break;
    }
    if (waited > 20_000) throw new Error(`features not ready after 20 s: ${statuses.join(', ')}`);
    await sleep(50);
  }
  return { list_entries: imported, import_ms: Math.round(importMs) };
}

/**
 * Before the full-configuration load: decisions by hand show that features and lists are really
 * evaluated. Throws (and so fails the benchmark) unless:
 * - on a key no one else uses, 3 decisions give the 3rd every feature with its exact value (counts 3,
 *   sum 3 × amount, distincts 1), the 1st hits only the body's two rules, and the 11th also hits
 *   `velocity-1h` (`features.txn_count_1h > 10`);
 * - a listed address, an address inside a listed range, the load's blocked range, a listed e-mail
 *   and a listed device are each rejected by their list rule, and an allow-listed account on a
 *   listed address is not;
 * - no decision has a rule error or a degraded component.
 * Returns a one-line summary and the figures.
 */
async function checkFullConfiguration(port, apiKey, template, policyVersion, entries) {
  const { accounts, badActors } = keySpread;
  const fresh = 9_000_000; // beyond every index the load uses
  let sequence = 0;
  const decide = async (index, overrides = {}) => {
    sequence += 1;
    const values = {
      '@ID@': `fchk-00-${String(sequence).padStart(9, '0')}`,
      '@ACCOUNT@': keys.account(index),
      '@EMAIL@': keys.email(index),
      '@IP@': keys.ip(index),
      '@DEVICE@': keys.device(index),
      '@CARD@': keys.card(index),
      ...overrides,
    };
    // A generous deadline: these decisions check what is decided, not how fast (on a busy machine
    // the template's 100 ms could leave a stage out, which the check would take for a fault).
    const { body } = await api(port, 'POST', '/v1/decisions', apiKey, {
      ...JSON.parse(fillTemplate(template, values)),
      timeout_ms: 2000,
    });
    if (body.errors.length > 0 || body.degraded.length > 0) {
      throw new Error(`full configuration: a decision with errors or degraded: ${JSON.stringify(body)}`);
    }
    return body;
  };
  const hitsOf = (decision) => decision.rules.map((hit) => hit.id);
  // The published version serves within 1 s (SPEC §4); wait for it on a key of its own.
  const started = performance.now();
  while ((await decide(fresh + 1)).policy_version !== policyVersion) {
    if (performance.now() - started > 5000)
      throw new Error(`policy version ${policyVersion} not serving after 5 s`);
    await sleep(50);
  }
  const bodyRules = ['bin-country-mismatch', 'new-device-amount'];
  const repeats = [];
  for (let count = 0; count < 11; count += 1) repeats.push(await decide(fresh));
  const detail = await decisionDetail(port, apiKey, repeats[2].decision_id);
  const amount = JSON.parse(fillTemplate(template, keySamples)).fields.amount;
  const expected = {
    txn_count_1h: 3,
    txn_count_24h: 3,
    amount_sum_24h: 3 * amount,
    distinct_cards_24h: 1,
    card_txn_count_10m: 3,
    ip_txn_count_1m: 3,
    accounts_per_ip_1h: 1,
    accounts_per_device_24h: 1,
  };
  const wrong = Object.keys(featureDefinitions).filter((name) => detail.features?.[name] !== expected[name]);
  if (wrong.length > 0) {
    throw new Error(
      `full configuration: features on a repeat key are not as expected (${wrong.join(', ')}): got ${JSON.stringify(detail.features)}, expected ${JSON.stringify(expected)}`,
    );
  }
  if (hitsOf(repeats[0]).join(',') !== bodyRules.join(',')) {
    throw new Error(`full configuration: unexpected first decision: ${JSON.stringify(repeats[0])}`);
  }
  if (!hitsOf(repeats[10]).includes('velocity-1h') || repeats[10].verdict !== 'review') {
    throw new Error(
      `full configuration: the 11th payment of an account did not hit velocity-1h: ${JSON.stringify(repeats[10])}`,
    );
  }
  const [listedAddress] = entries.blocked_ips;
  const range = entries.blocked_ips.find(
    (entry) => entry.value.includes('/') && !entry.value.startsWith('185.220.'),
  );
  const inRange = range.value.replace(/\.(\d+)\/\d+$/, (_, last) => `.${Number(last) + 1}`);
  const allowed = keys.account(7);
  if (!entries.allowed_accounts.some((entry) => entry.value === allowed))
    throw new Error('account 7 is not allow-listed');
  const cases = [
    ['listed address', 'blocked-ip', fresh + 2, { '@IP@': listedAddress.value }],
    ['address in a listed range', 'blocked-ip', fresh + 3, { '@IP@': inRange }],
    ["address in the load's blocked range", 'blocked-ip', fresh + 4, { '@IP@': '185.220.101.150' }],
    [
      'listed e-mail',
      'blocked-device-or-email',
      fresh + 5,
      { '@EMAIL@': keys.email(accounts + badActors - 1) },
    ],
    ['listed device', 'blocked-device-or-email', fresh + 6, { '@DEVICE@': keys.device(2 * accounts) }],
  ];
  for (const [what, rule, index, overrides] of cases) {
    const decision = await decide(index, overrides);
    if (!hitsOf(decision).includes(rule) || decision.verdict !== 'reject') {
      throw new Error(
        `full configuration: a ${what} was not rejected by ${rule}: ${JSON.stringify(decision)}`,
      );
    }
  }
  const pass = await decide(fresh + 7, { '@ACCOUNT@': allowed, '@IP@': listedAddress.value });
  if (hitsOf(pass).join(',') !== bodyRules.join(',') || pass.verdict !== 'challenge') {
    throw new Error(
      `full configuration: an allow-listed account on a listed address was blocked: ${JSON.stringify(pass)}`,
    );
  }
  const line =
    `features 8/8 exact on a repeat key (3rd payment: txn_count_1h ${detail.features.txn_count_1h}, amount_sum_24h ${detail.features.amount_sum_24h}), ` +
    'velocity-1h hits the 11th; listed address, range, e-mail, device -> reject; allow-listed account passes';
  return { line, features_on_repeat_key: detail.features, sample_decision: repeats[0], decisions: sequence };
}

/**
 * A stored decision by id. The decision log writes behind the answers (in PostgreSQL a batch may
 * take a moment), so a 404 is polled for up to 5 s.
 */
async function decisionDetail(port, apiKey, decisionId) {
  const started = performance.now();
  for (;;) {
    try {
      return (await api(port, 'GET', `/v1/manage/decisions/${decisionId}`, apiKey)).body;
    } catch (error) {
      if (!String(error.message).includes(': 404 ') || performance.now() - started > 5000) throw error;
      await sleep(50);
    }
  }
}

/**
 * After the full-configuration load: the load's bad share met the lists, so both list rules hit some
 * of its decisions (found with the decision search; the search index fills behind the answers, so
 * this polls for up to 10 s). Throws otherwise.
 */
async function checkListHitsUnderLoad(port, apiKey) {
  const found = {};
  for (const rule of ['blocked-ip', 'blocked-device-or-email']) {
    for (let waited = 0; ; waited += 100) {
      const { body } = await api(port, 'GET', `/v1/manage/decisions?rule=${rule}&limit=1`, apiKey);
      const [decision] = body.decisions;
      if (decision?.event_id.startsWith('w')) {
        found[rule] = decision.event_id;
        break;
      }
      if (waited > 10_000) throw new Error(`no decision of the load hit ${rule}: the keys miss the lists`);
      await sleep(100);
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// wrk

let wrkRuns = 0;

/**
 * Runs wrk with `script` (bench/decision.lua by default; `scriptArgs` follow its 4 arguments);
 * fails on any non-2xx response or socket error.
 */
async function runWrk({
  port,
  apiKey,
  template,
  connections,
  seconds,
  thinkMs = 0,
  pid,
  script = luaScript,
  scriptArgs = [],
  refusalsExpected = false,
}) {
  wrkRuns += 1;
  const tag = `w${String(wrkRuns).padStart(4, '0')}`;
  const args = [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '--timeout',
    '5s',
    '--latency',
    '-s',
    script,
    `http://127.0.0.1:${port}/v1/decisions`,
    '--',
    apiKey,
    template,
    tag,
    String(thinkMs),
    ...scriptArgs,
  ];
  const cpuBefore = pid === undefined ? Number.NaN : cpuMs(pid);
  const { code, stdout, stderr } = await new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.stderr.on('data', (chunk) => {
      err += chunk;
    });
    child.on('error', reject);
    child.on('exit', (exitCode) => {
      children.delete(child);
      resolve({ code: exitCode, stdout: out, stderr: err });
    });
  });
  const cpuAfter = pid === undefined ? Number.NaN : cpuMs(pid);
  const line = stdout.split('\n').find((text) => text.startsWith('BENCH_RESULT '));
  if (code !== 0 || line === undefined) throw new Error(`wrk failed (exit ${code}):\n${stdout}\n${stderr}`);
  const result = JSON.parse(line.slice('BENCH_RESULT '.length));
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const { status, ...socket } = result.errors;
  if (!refusalsExpected && (non2xx > 0 || status > 0)) {
    throw new Error(`${Math.max(non2xx, status)} non-2xx responses from port ${port}:\n${stdout}`);
  }
  if (Object.values(socket).some((count) => count > 0)) {
    throw new Error(`socket errors ${JSON.stringify(socket)} from port ${port}:\n${stdout}`);
  }
  const wallSeconds = result.duration_us / 1e6;
  const serverCpuMs = cpuAfter - cpuBefore;
  const ms = (us) => Math.round(us) / 1000;
  return {
    connections,
    think_ms: thinkMs,
    seconds: Math.round(wallSeconds * 100) / 100,
    requests: result.requests,
    non_2xx: Math.max(non2xx, status),
    // 200 answers not made with every component (bench/decision-keys.lua counts them; null: not counted).
    degraded: result.degraded ?? null,
    rps: Math.round(result.requests / wallSeconds),
    p50_ms: ms(result.latency_us.p50),
    p90_ms: ms(result.latency_us.p90),
    p99_ms: ms(result.latency_us.p99),
    p999_ms: ms(result.latency_us.p999),
    max_ms: ms(result.latency_us.max),
    server_cpu_us_per_request: Number.isNaN(serverCpuMs)
      ? null
      : Math.round((serverCpuMs * 1000 * 10) / result.requests) / 10,
    server_cpu_share: Number.isNaN(serverCpuMs)
      ? null
      : Math.round((serverCpuMs / 1000 / wallSeconds) * 100) / 100,
  };
}

/** Warm-up run (discarded), then the measured run at full load. */
async function measureMax(load, options) {
  await runWrk({ ...load, connections: options.connections, seconds: options.seconds.warmup });
  return runWrk({ ...load, connections: options.connections, seconds: options.seconds.measure });
}

/**
 * Latency at about half of the maximum throughput. wrk has no fixed-rate mode (wrk2 has), so the
 * load is paced: each connection waits a random think time (exponential, mean `thinkMs`) before
 * each request, and the number of connections is tuned with short probes until the achieved
 * rate is within 5% of the target. The measured run then uses that connection count.
 */
async function measureHalfLoad(load, options, maxRps) {
  const result = await measurePaced(load, options, maxRps / 2);
  return { ...result, share_of_max: round2(result.rps / maxRps) };
}

/**
 * A paced run (think time per connection) at about `target` req/s: the connection count is tuned
 * with short probes (within 5%), then the measured run uses it.
 */
async function measurePaced(load, options, target) {
  const perConnection = 1000 / (options.thinkMs + 0.5);
  let connections = Math.max(1, Math.round(target / perConnection));
  const probes = [];
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const probe = await runWrk({
      ...load,
      connections,
      seconds: options.seconds.probe,
      thinkMs: options.thinkMs,
    });
    probes.push({ connections, rps: probe.rps });
    const error = probe.rps / target - 1;
    if (Math.abs(error) <= 0.05) break;
    const next = Math.max(1, Math.round((connections * target) / probe.rps));
    if (next === connections) break;
    connections = next;
  }
  const result = await runWrk({
    ...load,
    connections,
    seconds: options.seconds.half,
    thinkMs: options.thinkMs,
  });
  return { ...result, target_rps: Math.round(target), probes };
}

// ---------------------------------------------------------------------------------------------
// One run: Vigil, then the bare server (which also repeats Vigil's half-load pacing as a control).

/**
 * Starts the bare server on a free port and waits until it is ready; `load` is its wrk target.
 * Stop `server` with `stopServer`.
 */
async function startBare(template) {
  const port = await freePort();
  const spawnedAt = performance.now();
  const server = startServer('bare fastify', [join(benchDir, 'bare-fastify.mjs')], {
    PORT: String(port),
    HOST: '127.0.0.1',
  });
  try {
    const readyMs = await waitReady(server, port, spawnedAt);
    // The bare server ignores credentials; a key of a typical length keeps the request size alike.
    const load = { port, apiKey: `k_${'x'.repeat(12)}.${'y'.repeat(43)}`, template, pid: server.child.pid };
    return { server, load, readyMs };
  } catch (error) {
    await stopServer(server);
    throw error;
  }
}

/**
 * The bare server at full load, then, as a control for Vigil's half-load latency, at the same
 * paced load (connections and think time) that Vigil's half-load run used.
 */
async function benchBare(options, template, pacedConnections) {
  const { server, load, readyMs } = await startBare(template);
  try {
    const max = await measureMax(load, options);
    const paced = await runWrk({
      ...load,
      connections: pacedConnections,
      seconds: options.seconds.half,
      thinkMs: options.thinkMs,
    });
    return { ready_ms: Math.round(readyMs), max, paced };
  } finally {
    await stopServer(server);
  }
}

/**
 * Starts Vigil (`node apps/server/bundle/main.js`, what `npm start` runs, with `nodeArgs`) on a free port and a new data
 * dir, waits until it is ready and has loaded its IP data, runs `work({ port, adminToken, readyMs,
 * pid })`, then stops it and removes the data dir, also when anything fails.
 */
async function withVigil(nodeArgs, work, extraEnv = {}) {
  const port = await freePort();
  const dataDir = makeTempDir('vigil-bench-');
  const adminToken = randomBytes(16).toString('hex');
  const spawnedAt = performance.now();
  // VIGIL_BENCH_NODE_ARGS (space-separated) adds node options to every Vigil process, for
  // diagnostics such as `--cpu-prof --cpu-prof-dir=DIR` or `--trace-gc`; off by default.
  const extraArgs = (process.env.VIGIL_BENCH_NODE_ARGS ?? '').split(' ').filter((part) => part !== '');
  const server = startServer('vigil', [...nodeArgs, ...extraArgs, join(root, 'apps/server/bundle/main.js')], {
    PORT: String(port),
    HOST: '127.0.0.1',
    VIGIL_DATA_DIR: dataDir,
    VIGIL_ADMIN_TOKEN: adminToken,
    VIGIL_LOG_LEVEL: 'info',
    // Full load here is saturation by design: measure the decision path, not load shedding (which
    // `npm run chaos` measures).
    VIGIL_SHED_LAG_MS: '0',
    ...extraEnv,
  });
  try {
    const readyMs = await waitReady(server, port, spawnedAt);
    // The packaged IP data loads once, in a worker, after the node is ready; wait for it so the
    // measured load does not share the CPU with a one-off start-up cost.
    for (let waited = 0; waited < 20_000 && !server.output().includes('IP database'); waited += 100) {
      await sleep(100);
    }
    return await work({ port, adminToken, readyMs: Math.round(readyMs), pid: server.child.pid });
  } finally {
    await stopServer(server);
    removeTempDir(dataDir);
  }
}

/**
 * Vigil at full load, and at half load unless it is the profiled run (whose numbers are not kept)
 * or the run with a policy (`policy`: full load only, with the reference schema and policy).
 */
function benchVigil(options, template, profileDir, policy) {
  const nodeArgs = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  return withVigil(nodeArgs, async ({ port, adminToken, readyMs, pid }) => {
    const { apiKey, policyVersion } = await setUpTenant(port, adminToken, policy);
    const sample =
      policy === undefined
        ? await checkDecision(port, apiKey, template)
        : await checkPolicyDecision(port, apiKey, template, policyVersion);
    const load = { port, apiKey, template, pid };
    const max = await measureMax(load, options);
    if (profileDir !== undefined) return { max };
    if (policy !== undefined) {
      return { ready_ms: readyMs, rules: policy.rules.length, sample_decision: sample, max };
    }
    const half = await measureHalfLoad(load, options, max.rps);
    return { ready_ms: readyMs, sample_decision: sample, max, half };
  });
}

/**
 * Vigil with the full reference configuration (issue 4): the reference schema, the 8 features, the
 * 3 lists filled by bulk import, and `fullHttpPolicy` published; the sanity check by hand, then
 * full load and half load with bench/decision-keys.lua, which varies the keys per request.
 */
function benchVigilFull(options, template, entries, extraEnv = {}, nodeArgs = []) {
  return withVigil(
    nodeArgs,
    async ({ port, adminToken, readyMs, pid }) => {
      let setup;
      const { apiKey, policyVersion } = await setUpTenant(port, adminToken, fullHttpPolicy, async (key) => {
        setup = await setUpFeaturesAndLists(port, key, entries);
      });
      const sanity = await checkFullConfiguration(port, apiKey, template, policyVersion, entries);
      console.log(`  sanity: ${sanity.line}`);
      const load = {
        port,
        apiKey,
        template,
        pid,
        script: keysLuaScript,
        scriptArgs: [keySpread.accounts, keySpread.badShare, keySpread.badActors].map(String),
      };
      const max = await measureMax(load, options);
      sanity.list_hits_under_load = await checkListHitsUnderLoad(port, apiKey);
      const half = await measureHalfLoad(load, options, max.rps);
      return {
        ready_ms: readyMs,
        rules: fullHttpPolicy.rules.length,
        features: Object.keys(featureDefinitions).length,
        lists: Object.keys(listDefinitions).length,
        setup,
        sanity,
        max,
        half,
      };
    },
    extraEnv,
  );
}

/**
 * The distributed scenario (issue 6): `benchVigilFull` on a node with VIGIL_REDIS_URL and
 * VIGIL_DATABASE_URL pointing at a private Redis and PostgreSQL started for this run alone.
 * Adds what those servers hold afterwards (Redis keys, decision rows), so the figures are
 * evidently made with them.
 */
async function benchVigilDistributed(options, template, entries, nodeArgs = []) {
  const backends = await startBackends();
  try {
    const result = await benchVigilFull(
      options,
      template,
      entries,
      {
        VIGIL_REDIS_URL: backends.redisUrl,
        VIGIL_DATABASE_URL: backends.databaseUrl,
        VIGIL_REDIS_COMMAND_TIMEOUT_MS: String(distributedRedisTimeoutMs),
      },
      nodeArgs,
    );
    const rows = await pgQuery(
      backends.databaseUrl,
      "SELECT count(*)::int AS n FROM decisions WHERE kind = 'decision'",
    );
    const keysReply = await redisDbsize(backends.redis.port);
    result.backends = {
      redis: `private redis-server (bench/backends.mjs), command timeout ${distributedRedisTimeoutMs} ms`,
      postgres: 'private PostgreSQL, fsync off (bench/backends.mjs)',
      decision_rows: rows.rows[0].n,
      redis_keys: keysReply,
    };
    if (!(result.backends.decision_rows > 0) || !(keysReply > 0)) {
      throw new Error(
        `distributed: the run left ${result.backends.decision_rows} decision rows in PostgreSQL and ${keysReply} keys in Redis`,
      );
    }
    return result;
  } finally {
    await backends.stop();
  }
}

/** `DBSIZE` of the Redis on `port`, over a plain socket. */
async function redisDbsize(port) {
  const { rawCommand } = await import(join(root, 'packages/store-redis/dist/testing/redis-processes.js'));
  const reply = await rawCommand(port, 'DBSIZE');
  return Number(/^:(\d+)/.exec(reply)?.[1] ?? Number.NaN);
}

// ---------------------------------------------------------------------------------------------
// Reporting

const round2 = (value) => Math.round(value * 100) / 100;

function median(values) {
  const sorted = values.filter((value) => typeof value === 'number').sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function summarise(runs) {
  const pick = (path) => median(runs.map((run) => path.reduce((value, key) => value?.[key], run)));
  const figures = (server, phase) =>
    Object.fromEntries(
      ['rps', 'p50_ms', 'p90_ms', 'p99_ms', 'p999_ms', 'server_cpu_us_per_request', 'connections'].map(
        (name) => [name, pick([server, phase, name])],
      ),
    );
  const summary = {};
  const embedded = runs.every((run) => run.vigil !== undefined && run.bare !== undefined);
  if (embedded) {
    Object.assign(summary, {
      bare: { ready_ms: pick(['bare', 'ready_ms']), ...figures('bare', 'max') },
      vigil: { ready_ms: pick(['vigil', 'ready_ms']), ...figures('vigil', 'max') },
      vigil_half_load: {
        ...figures('vigil', 'half'),
        share_of_max: pick(['vigil', 'half', 'share_of_max']),
      },
      bare_paced: figures('bare', 'paced'),
      ratio: pick(['ratio']),
    });
  }
  if (runs.every((run) => run.vigil_policy !== undefined)) {
    summary.vigil_policy = { rules: runs[0].vigil_policy.rules, ...figures('vigil_policy', 'max') };
    summary.ratio_with_policy = pick(['ratio_with_policy']);
  }
  const full = runs.every((run) => run.vigil_full !== undefined);
  if (full) {
    const { rules, features, lists } = runs[0].vigil_full;
    summary.vigil_full = { rules, features, lists, ...figures('vigil_full', 'max') };
    summary.vigil_full_half_load = {
      ...figures('vigil_full', 'half'),
      share_of_max: pick(['vigil_full', 'half', 'share_of_max']),
    };
    if (embedded) summary.ratio_full = pick(['ratio_full']);
    const sum = (phase, name) => runs.reduce((total, run) => total + run.vigil_full[phase][name], 0);
    summary.vigil_full_degraded = {
      answers: sum('max', 'requests') + sum('half', 'requests'),
      degraded: sum('max', 'degraded') + sum('half', 'degraded'),
    };
  }
  const distributed = full && runs.every((run) => run.vigil_distributed !== undefined);
  if (distributed) {
    summary.vigil_distributed = {
      ready_ms: pick(['vigil_distributed', 'ready_ms']),
      ...figures('vigil_distributed', 'max'),
    };
    summary.vigil_distributed_half_load = {
      ...figures('vigil_distributed', 'half'),
      share_of_max: pick(['vigil_distributed', 'half', 'share_of_max']),
    };
    summary.ratio_distributed = pick(['ratio_distributed']);
    const sum = (phase, name) => runs.reduce((total, run) => total + run.vigil_distributed[phase][name], 0);
    summary.vigil_distributed_degraded = {
      answers: sum('max', 'requests') + sum('half', 'requests'),
      degraded: sum('max', 'degraded') + sum('half', 'degraded'),
    };
  }
  summary.targets = {};
  if (embedded) {
    Object.assign(summary.targets, {
      ratio: { target: `>= ${targets.ratio}`, value: summary.ratio, met: summary.ratio >= targets.ratio },
      ready_ms: {
        target: `<= ${targets.readyMs}`,
        value: summary.vigil.ready_ms,
        met: summary.vigil.ready_ms <= targets.readyMs,
      },
      half_load_p99_ms: {
        target: `<= ${targets.halfLoadP99Ms}`,
        value: summary.vigil_half_load.p99_ms,
        met: summary.vigil_half_load.p99_ms <= targets.halfLoadP99Ms,
      },
    });
  }
  if (distributed) {
    summary.targets.distributed_ratio = {
      target: `>= ${distributedTargets.ratio} (distributed / embedded, full configuration)`,
      value: summary.ratio_distributed,
      met: summary.ratio_distributed >= distributedTargets.ratio,
    };
  }
  if (full && embedded) {
    summary.targets.full_ratio = {
      target: `>= ${fullTargets.ratio}`,
      value: summary.ratio_full,
      met: summary.ratio_full >= fullTargets.ratio,
    };
    summary.targets.full_half_load_p99_ms = {
      target: `<= ${fullTargets.halfLoadP99Ms}`,
      value: summary.vigil_full_half_load.p99_ms,
      met: summary.vigil_full_half_load.p99_ms <= fullTargets.halfLoadP99Ms,
    };
  }
  return summary;
}

function printTable(summary, runCount) {
  const embedded = summary.vigil !== undefined;
  const full = summary.vigil_full !== undefined;
  const distributed = summary.vigil_distributed !== undefined;
  const fullName = full
    ? `full policy (${summary.vigil_full.rules} rules, ${summary.vigil_full.features} features, ${summary.vigil_full.lists} lists)`
    : '';
  const entries = [
    ...(embedded
      ? [
          ['bare fastify', summary.bare],
          ['vigil', summary.vigil],
        ]
      : []),
    ...(summary.vigil_policy === undefined
      ? []
      : [[`vigil + reference policy (${summary.vigil_policy.rules} rules)`, summary.vigil_policy]]),
    ...(full ? [[`vigil + ${fullName}`, summary.vigil_full]] : []),
    ...(distributed ? [['vigil on Redis + PostgreSQL + full policy', summary.vigil_distributed]] : []),
    ...(embedded
      ? [[`vigil, half load (${summary.vigil_half_load.connections} paced conns)`, summary.vigil_half_load]]
      : []),
    ...(full
      ? [
          [
            `vigil + full policy, half load (${summary.vigil_full_half_load.connections} paced conns)`,
            summary.vigil_full_half_load,
          ],
        ]
      : []),
    ...(distributed
      ? [
          [
            `vigil on Redis + PostgreSQL, half load (${summary.vigil_distributed_half_load.connections} paced conns)`,
            summary.vigil_distributed_half_load,
          ],
        ]
      : []),
    ...(embedded ? [[`bare, same paced load (control)`, summary.bare_paced]] : []),
  ];
  const rows = [
    ['server', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'CPU µs/req', 'ready ms'],
    ...entries.map(([name, row]) => [
      name,
      String(row.rps),
      row.p50_ms.toFixed(3),
      row.p90_ms.toFixed(3),
      row.p99_ms.toFixed(3),
      row.server_cpu_us_per_request === null ? '-' : row.server_cpu_us_per_request.toFixed(1),
      row.ready_ms === undefined || row.ready_ms === null ? '' : String(row.ready_ms),
    ]),
  ];
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const format = (row) => row.map((cell, column) => cell.padStart(widths[column])).join('  ');
  const lines = [
    format(rows[0]),
    widths.map((width) => '-'.repeat(width)).join('  '),
    ...rows.slice(1).map(format),
  ];
  const mark = (met) => (met ? 'met' : 'NOT MET');
  console.log(`\n${runCount > 1 ? `median of ${runCount} runs` : 'one run'}\n`);
  console.log(lines.join('\n'));
  console.log('');
  if (embedded) {
    const { ratio, ready_ms: ready, half_load_p99_ms: half } = summary.targets;
    console.log(
      `vigil / bare throughput  ${(ratio.value * 100).toFixed(1)}%   (target >= 60%: ${mark(ratio.met)})`,
    );
    if (summary.ratio_with_policy !== undefined) {
      console.log(
        `vigil + policy / bare    ${(summary.ratio_with_policy * 100).toFixed(1)}%   (${summary.vigil_policy.rules} rules published; no target)`,
      );
    }
    console.log(`vigil ready after        ${ready.value} ms   (target <= 1500 ms: ${mark(ready.met)})`);
    console.log(
      `half load                ${summary.vigil_half_load.rps} req/s = ${(summary.vigil_half_load.share_of_max * 100).toFixed(0)}% of max, p99 ${half.value.toFixed(3)} ms   (target <= 5 ms: ${mark(half.met)})`,
    );
  }
  if (full) {
    const fullLoad = summary.vigil_full_half_load;
    if (embedded) {
      const { full_ratio: fullRatio, full_half_load_p99_ms: fullHalf } = summary.targets;
      console.log(
        `full policy / bare       ${(fullRatio.value * 100).toFixed(1)}%   (issue 4 target >= 40%: ${mark(fullRatio.met)})`,
      );
      console.log(
        `full policy, half load   ${fullLoad.rps} req/s = ${(fullLoad.share_of_max * 100).toFixed(0)}% of max, p99 ${fullHalf.value.toFixed(3)} ms   (issue 4 target <= 5 ms: ${mark(fullHalf.met)})`,
      );
    } else {
      console.log(
        `full policy, half load   ${fullLoad.rps} req/s = ${(fullLoad.share_of_max * 100).toFixed(0)}% of max, p99 ${fullLoad.p99_ms.toFixed(3)} ms`,
      );
    }
    const { answers, degraded } = summary.vigil_full_degraded;
    console.log(
      `full policy, degraded    ${degraded} of ${answers} measured answers${degraded > 0 ? '   (WARNING: decided without some component, e.g. rules cut off)' : ''}`,
    );
  }
  if (distributed) {
    const { distributed_ratio: ratio } = summary.targets;
    const half = summary.vigil_distributed_half_load;
    console.log(
      `distributed / embedded   ${(ratio.value * 100).toFixed(1)}%   (Redis + PostgreSQL vs SQLite + memory, full policy; issue 6 target >= 50%: ${mark(ratio.met)})`,
    );
    console.log(
      `distributed, half load   ${half.rps} req/s = ${(half.share_of_max * 100).toFixed(0)}% of max, p99 ${half.p99_ms.toFixed(3)} ms`,
    );
    const { answers, degraded } = summary.vigil_distributed_degraded;
    console.log(
      `distributed, degraded    ${degraded} of ${answers} measured answers${degraded > 0 ? '   (WARNING: decided without some component, e.g. Redis timed out)' : ''}`,
    );
  }
}

function machine() {
  const cpuModel =
    /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model;
  let wrkVersion = null;
  try {
    execFileSync('wrk', ['-v'], { stdio: 'pipe' });
  } catch (error) {
    // `wrk -v` prints its version and exits 1.
    wrkVersion = /wrk (\S+)/.exec(String(error.stdout ?? ''))?.[1] ?? null;
  }
  return { nproc: cpus().length, cpu_model: cpuModel, node: process.version, wrk: wrkVersion };
}

/** Self time per function from a V8 .cpuprofile, the heaviest first. */
function topFunctions(profilePath, count = 25) {
  const profile = JSON.parse(readFileSync(profilePath, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const deltas = new Map();
  for (let index = 0; index < profile.samples.length; index += 1) {
    const id = profile.samples[index];
    deltas.set(id, (deltas.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  }
  const total = [...deltas.values()].reduce((sum, value) => sum + value, 0);
  const bySite = new Map();
  for (const [id, time] of deltas) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const file = url.replace(/^file:\/\//, '').replace(root, '');
    const site = `${functionName || '(anonymous)'} ${file}${file ? `:${lineNumber + 1}` : ''}`;
    bySite.set(site, (bySite.get(site) ?? 0) + time);
  }
  return [...bySite.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([site, time]) => ({ site, self_percent: round2((time / total) * 100) }));
}

/** One more Vigil run at full load under `--cpu-prof`; its throughput is not part of the results. */
async function profileVigil(options, template) {
  console.log('profiling vigil (node --cpu-prof) ...');
  const profileDir = makeTempDir('vigil-prof-');
  try {
    const { max } = await benchVigil(options, template, profileDir);
    const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error('node --cpu-prof wrote no profile');
    mkdirSync(resultsDir, { recursive: true });
    const kept = join(resultsDir, 'vigil-cpu-profile.json');
    copyFileSync(join(profileDir, file), kept);
    return { file: kept.replace(root, ''), rps_under_profiler: max.rps, top_self_time: topFunctions(kept) };
  } finally {
    removeTempDir(profileDir);
  }
}

/**
 * `--distributed-only --profile`: one more distributed run under `--cpu-prof` (its figures are not
 * part of the results), kept as bench/results/distributed-cpu-profile.json.
 */
async function profileDistributed(options, template, entries) {
  console.log('profiling vigil on Redis + PostgreSQL (node --cpu-prof) ...');
  const profileDir = makeTempDir('vigil-prof-');
  try {
    const { max } = await benchVigilDistributed(options, template, entries, [
      '--cpu-prof',
      `--cpu-prof-dir=${profileDir}`,
    ]);
    const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error('node --cpu-prof wrote no profile');
    mkdirSync(resultsDir, { recursive: true });
    const kept = join(resultsDir, 'distributed-cpu-profile.json');
    copyFileSync(join(profileDir, file), kept);
    return { file: kept.replace(root, ''), rps_under_profiler: max.rps, top_self_time: topFunctions(kept) };
  } finally {
    removeTempDir(profileDir);
  }
}

// ---------------------------------------------------------------------------------------------

/** bench/rules.mjs in its own process; fails when it fails (for example on an engine disagreement). */
/** Runs one of the benchmark scripts in its own `node` process; resolves with what it printed. */
async function runBenchmarkScript(script, { args = [], nodeArgs = [], env = {}, echo = true } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, join(benchDir, script), ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
    if (echo) process.stdout.write(chunk);
  });
  const code = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (exitCode, signal) => resolve(exitCode ?? signal));
  });
  children.delete(child);
  if (code !== 0) throw new Error(`bench/${script} failed (${code})`);
  return output;
}

async function runRulesBenchmark(options) {
  console.log('rule evaluation (bench/rules.mjs) ...');
  await runBenchmarkScript('rules.mjs', { args: options.quick ? ['--quick'] : [] });
  console.log('');
}

/** Issue 4's targets for the embedded counters and list imports. */
const componentTargets = { counterOpsPerSecond: 1_000_000, bytesPerKey: 1024, listImportSeconds: 10 };

/**
 * Issue 4's component figures, each in its own process: the embedded counter store
 * (bench/counters.mjs: updates plus reads per second on one core, and bytes per key of a 24 h count
 * feature) at 10k, 100k and 1M keys, and a bulk list import over HTTP (bench/lists-import.mjs,
 * 1M entries; 100k with --quick).
 */
async function runComponentBenchmarks(options) {
  const keyCounts = options.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
  const counters = [];
  for (const keys of keyCounts) {
    console.log(`embedded counters, ${keys.toLocaleString('en')} keys (bench/counters.mjs) ...`);
    const output = await runBenchmarkScript('counters.mjs', {
      nodeArgs: ['--expose-gc'],
      env: { KEYS: String(keys), OPS: String(options.quick ? 500_000 : 3_000_000) },
      echo: false,
    });
    const result = JSON.parse(output.slice(output.indexOf('{')));
    counters.push(result);
    console.log(
      `  ${result.updates_plus_reads_per_second_sync.toLocaleString('en')} updates+reads/s (async port ${result.updates_plus_reads_per_second_async_port.toLocaleString('en')}), ${result.bytes_per_key} bytes per key`,
    );
  }
  const entries = options.quick ? 100_000 : 1_000_000;
  console.log(`list import, ${entries.toLocaleString('en')} entries (bench/lists-import.mjs) ...`);
  const listOutput = await runBenchmarkScript('lists-import.mjs', { args: [`--entries=${entries}`] });
  const seconds = (format) =>
    Number(new RegExp(`${format}\\s+[\\d.]+ MiB: ([\\d.]+) s`).exec(listOutput)?.[1] ?? Number.NaN);
  const lists = { entries, json_s: seconds('JSON'), csv_s: seconds('CSV') };
  const largest = counters.at(-1);
  const slowestImport = Math.max(lists.json_s, lists.csv_s);
  const targets = {
    counter_ops_per_second: {
      target: `>= ${componentTargets.counterOpsPerSecond} at ${largest.keys} keys`,
      value: largest.updates_plus_reads_per_second_sync,
      met: largest.updates_plus_reads_per_second_sync >= componentTargets.counterOpsPerSecond,
    },
    bytes_per_key: {
      target: `<= ${componentTargets.bytesPerKey}`,
      value: Math.max(...counters.map((result) => result.bytes_per_key)),
      met: counters.every((result) => result.bytes_per_key <= componentTargets.bytesPerKey),
    },
    list_import_s: {
      target: `<= ${componentTargets.listImportSeconds} for 1M entries`,
      value: slowestImport,
      // A smaller import (--quick) says nothing about the 1M target.
      met: entries === 1_000_000 ? slowestImport <= componentTargets.listImportSeconds : null,
    },
  };
  console.log('\ncomponents (issue 4)');
  for (const [name, figure] of Object.entries(targets)) {
    console.log(
      `  ${name.padEnd(24)} ${String(figure.value).padStart(10)}   (target ${figure.target}: ${figure.met === null ? 'n/a with --quick' : figure.met ? 'met' : 'NOT MET'})`,
    );
  }
  console.log('');
  const report = {
    date: new Date().toISOString(),
    machine: machine(),
    quick: options.quick,
    counters,
    lists,
    targets,
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'components-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

/** The full configuration on an embedded node, then on a node on Redis and PostgreSQL. */
async function runFullAndDistributed(options, template, entries, index) {
  const describe = (result) =>
    `${result.max.rps} req/s, p99 ${result.max.p99_ms} ms, ${result.max.server_cpu_us_per_request} µs CPU/req; half load ${result.half.rps} req/s, p99 ${result.half.p99_ms} ms; degraded answers ${result.max.degraded} + ${result.half.degraded}`;
  console.log(`run ${index + 1}/${options.runs}: vigil with the full reference configuration ...`);
  const vigilFull = await benchVigilFull(options, template, entries);
  console.log(
    `  ${vigilFull.rules} rules, ${vigilFull.features} features, lists ${Object.values(vigilFull.setup.list_entries).join(' + ')} entries (imported in ${vigilFull.setup.import_ms} ms); ${describe(vigilFull)}`,
  );
  console.log(
    `run ${index + 1}/${options.runs}: vigil on Redis + PostgreSQL with the full reference configuration ...`,
  );
  const distributed = await benchVigilDistributed(options, template, entries);
  console.log(
    `  ready ${distributed.ready_ms} ms; ${describe(distributed)}; ${distributed.backends.decision_rows} decision rows in PostgreSQL, ${distributed.backends.redis_keys} keys in Redis`,
  );
  return {
    vigil_full: vigilFull,
    vigil_distributed: distributed,
    ratio_distributed: round2(distributed.max.rps / vigilFull.max.rps),
  };
}

// ---------------------------------------------------------------------------------------------
// Noisy-tenant isolation (issue 5), measured with wrk

/** Shares of the measured capacity, as in `npm run chaos`'s noisy-tenant drill. */
const isolation = { quietShare: 0.3, noisyQuotaShare: 0.05, floodFactor: 20, rounds: 3 };

/**
 * One node, two tenants: _quiet_ at 0.3 × capacity (paced wrk), and _noisy_, with a quota of 5% of
 * capacity (`rps = burst`), flooding at 20 × its quota (another paced wrk, its 429s expected).
 * Rounds alternate the quiet tenant alone and the quiet tenant during the flood, each 10 s; the
 * quiet tenant's p99 with the flood is compared with its p99 alone (issue 5: at most +10%).
 * wrk, not the chaos runner's Node generator: at these rates the generator's own event loop and
 * CPU grow with the flood and show in the latencies it measures.
 */
function benchIsolation(options, template) {
  return withVigil([], async ({ port, adminToken, pid }) => {
    const quiet = await setUpTenant(port, adminToken);
    await checkDecision(port, quiet.apiKey, template);
    const quietLoad = { port, apiKey: quiet.apiKey, template, pid };
    const max = await measureMax(quietLoad, options);
    const quota = Math.max(5, Math.round(max.rps * isolation.noisyQuotaShare));
    const tenant = await api(port, 'POST', '/v1/admin/tenants', adminToken, {
      name: 'noisy',
      rate_limit: { rps: quota, burst: quota },
    });
    const key = await api(port, 'POST', `/v1/admin/tenants/${tenant.body.id}/keys`, adminToken, {
      scopes: ['decide', 'manage'],
    });
    const noisyKey = key.body.api_key;
    await api(port, 'PUT', '/v1/manage/event-types/payment', noisyKey, eventSchema);
    const floodTarget = quota * isolation.floodFactor;
    const floodConnections = Math.max(1, Math.round(floodTarget / (1000 / (options.thinkMs + 0.5))));
    const flood = () =>
      runWrk({
        port,
        apiKey: noisyKey,
        template,
        connections: floodConnections,
        seconds: options.seconds.half + 1,
        thinkMs: options.thinkMs,
        refusalsExpected: true,
      });
    // The quiet tenant's pacing, tuned alone; every round then uses the same connection count.
    const tuned = await measurePaced(quietLoad, options, max.rps * isolation.quietShare);
    const paced = { ...quietLoad, connections: tuned.connections, thinkMs: options.thinkMs };
    const rounds = [];
    for (let round = 0; round < isolation.rounds; round += 1) {
      const alone = await runWrk({ ...paced, seconds: options.seconds.half });
      // The flood starts first and ends last, so the quiet run sees it throughout.
      const flooding = flood();
      await sleep(500);
      const during = await runWrk({ ...paced, seconds: options.seconds.half });
      const noisy = await flooding;
      rounds.push({
        alone,
        during,
        noisy: { ...noisy, refused_share: round2(noisy.non_2xx / Math.max(1, noisy.requests)) },
        p99_increase: round2(during.p99_ms / alone.p99_ms - 1),
      });
      console.log(
        `  round ${round + 1}: quiet alone ${alone.rps} req/s p99 ${alone.p99_ms} ms; with the flood ${during.rps} req/s p99 ${during.p99_ms} ms (${((during.p99_ms / alone.p99_ms - 1) * 100).toFixed(0)}%); noisy sent ${noisy.rps} req/s, ${((100 * noisy.non_2xx) / Math.max(1, noisy.requests)).toFixed(1)}% refused, their p99 ${noisy.p99_ms} ms`,
      );
    }
    return { max, quota, flood_target_rps: floodTarget, flood_connections: floodConnections, tuned, rounds };
  });
}

// ---------------------------------------------------------------------------------------------
// Alternating: Vigil and bare Fastify loaded in turns, for a ratio the machine's drift moves less

/** Pairs in `--alternating-only`; each pair is one measured run of each server, back to back. */
const alternatingPairs = 6;

/**
 * `--alternating-only`: Vigil (no policy) and the bare server both started, then loaded in turns
 * at full load (the same 50 connections), never at once: a warm-up of each, then
 * {@link alternatingPairs} pairs of measured runs, Vigil then bare, the order swapped every other
 * pair. The machine's speed drifts within minutes here, and in the sequential runs each server
 * caught its own state; a pair spans one measured run of each, so its ratio sees about the same.
 * The idle server costs next to nothing while the other is loaded (its CPU is read apart).
 */
async function runAlternating(options, template) {
  const loadBefore = loadavg();
  const { server: bareServer, load: bare } = await startBare(template);
  try {
    const pairs = await withVigil([], async ({ port: vigilPort, adminToken, pid }) => {
      const { apiKey } = await setUpTenant(vigilPort, adminToken);
      await checkDecision(vigilPort, apiKey, template);
      const vigil = { port: vigilPort, apiKey, template, pid };
      const seconds = options.seconds.measure;
      for (const load of [vigil, bare]) {
        await runWrk({ ...load, connections: options.connections, seconds: options.seconds.warmup });
      }
      const results = [];
      for (let pair = 0; pair < alternatingPairs; pair += 1) {
        const order = pair % 2 === 0 ? [vigil, bare] : [bare, vigil];
        const runs = [];
        for (const load of order)
          runs.push(await runWrk({ ...load, connections: options.connections, seconds }));
        const [vigilRun, bareRun] = pair % 2 === 0 ? runs : [runs[1], runs[0]];
        const ratio = round2(vigilRun.rps / bareRun.rps);
        console.log(
          `  pair ${pair + 1}/${alternatingPairs}: vigil ${vigilRun.rps} req/s (${vigilRun.server_cpu_us_per_request} µs CPU/req), bare ${bareRun.rps} req/s (${bareRun.server_cpu_us_per_request} µs), ratio ${Math.round(ratio * 100)}%`,
        );
        results.push({ vigil: vigilRun, bare: bareRun, ratio });
      }
      return results;
    });
    const summary = {
      pairs: pairs.length,
      ratio_median: median(pairs.map((pair) => pair.ratio)),
      ratio_min: Math.min(...pairs.map((pair) => pair.ratio)),
      ratio_max: Math.max(...pairs.map((pair) => pair.ratio)),
      vigil_rps_median: median(pairs.map((pair) => pair.vigil.rps)),
      bare_rps_median: median(pairs.map((pair) => pair.bare.rps)),
      vigil_cpu_us_median: median(pairs.map((pair) => pair.vigil.server_cpu_us_per_request)),
      bare_cpu_us_median: median(pairs.map((pair) => pair.bare.server_cpu_us_per_request)),
      target: `>= ${targets.ratio * 100}%`,
    };
    summary.met = summary.ratio_median >= targets.ratio;
    console.log(
      `\nvigil / bare, alternating   median ${Math.round(summary.ratio_median * 100)}% of ${summary.pairs} pairs (${Math.round(summary.ratio_min * 100)}..${Math.round(summary.ratio_max * 100)}%); vigil ${summary.vigil_rps_median} req/s at ${summary.vigil_cpu_us_median} µs CPU/req, bare ${summary.bare_rps_median} at ${summary.bare_cpu_us_median} µs   (target >= 60%: ${summary.met ? 'met' : 'NOT MET'})`,
    );
    const report = {
      date: new Date().toISOString(),
      machine: machine(),
      options: { quick: options.quick, seconds: options.seconds, connections: options.connections },
      load_average: { before: loadBefore.map(round2), after: loadavg().map(round2) },
      summary,
      pairs,
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, 'alternating-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    console.log('wrote bench/results/alternating-latest.json');
  } finally {
    await stopServer(bareServer);
  }
}

async function runIsolation(options, template) {
  const loadBefore = loadavg();
  console.log('noisy-tenant isolation: vigil, no policy ...');
  const result = await benchIsolation(options, template);
  const pick = (path) => median(result.rounds.map((round) => path.reduce((value, key) => value[key], round)));
  const summary = {
    capacity_rps: result.max.rps,
    noisy_quota_rps: result.quota,
    quiet_rps: pick(['alone', 'rps']),
    quiet_p50_alone_ms: pick(['alone', 'p50_ms']),
    quiet_p99_alone_ms: pick(['alone', 'p99_ms']),
    quiet_p50_during_ms: pick(['during', 'p50_ms']),
    quiet_p99_during_ms: pick(['during', 'p99_ms']),
    p99_increase_median: pick(['p99_increase']),
    noisy_sent_rps: pick(['noisy', 'rps']),
    noisy_refused_share: pick(['noisy', 'refused_share']),
    noisy_p99_ms: pick(['noisy', 'p99_ms']),
    target: 'quiet p99 increase <= 10%',
  };
  summary.met = summary.p99_increase_median <= 0.1;
  const loadAfter = loadavg();
  console.log(
    `\ncapacity ${summary.capacity_rps} req/s; quiet tenant ${summary.quiet_rps} req/s, p99 ${summary.quiet_p99_alone_ms} ms alone, ${summary.quiet_p99_during_ms} ms during the flood (median increase ${(summary.p99_increase_median * 100).toFixed(0)}%, target <= 10%: ${summary.met ? 'met' : 'NOT MET'}); noisy quota ${summary.noisy_quota_rps} req/s, sent ${summary.noisy_sent_rps} req/s, ${(summary.noisy_refused_share * 100).toFixed(1)}% refused (429), p99 ${summary.noisy_p99_ms} ms`,
  );
  const report = {
    date: new Date().toISOString(),
    machine: machine(),
    options: { quick: options.quick, seconds: options.seconds, think_ms: options.thinkMs, ...isolation },
    load_average: { before: loadBefore.map(round2), after: loadAfter.map(round2) },
    summary,
    result,
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'isolation-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log('wrote bench/results/isolation-latest.json');
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.isolationOnly) {
    await runIsolation(options, bodyTemplate());
    return;
  }
  if (options.alternatingOnly) {
    await runAlternating(options, bodyTemplate());
    return;
  }
  if (options.rules) await runRulesBenchmark(options);
  if (options.components) await runComponentBenchmarks(options);
  if (!options.http) return;
  const loadBefore = loadavg();
  const template = bodyTemplate();
  const policyTemplate = policyBodyTemplate();
  checkFeatureDefinitions();
  const fullTemplate = fullBodyTemplate();
  const entries = listEntries();
  const runs = [];
  let profile;
  for (let index = 0; index < options.runs; index += 1) {
    if (options.distributedOnly) {
      runs.push(await runFullAndDistributed(options, fullTemplate, entries, index));
      continue;
    }
    console.log(`run ${index + 1}/${options.runs}: vigil ...`);
    const vigil = await benchVigil(options, template);
    console.log(
      `  ready ${vigil.ready_ms} ms, ${vigil.max.rps} req/s, p99 ${vigil.max.p99_ms} ms; half load ${vigil.half.rps} req/s, p99 ${vigil.half.p99_ms} ms`,
    );
    console.log(`run ${index + 1}/${options.runs}: vigil with the reference policy ...`);
    const vigilPolicy = await benchVigil(options, policyTemplate, undefined, httpPolicy);
    console.log(
      `  ${vigilPolicy.rules} rules, ready ${vigilPolicy.ready_ms} ms, ${vigilPolicy.max.rps} req/s, p99 ${vigilPolicy.max.p99_ms} ms, ${vigilPolicy.max.server_cpu_us_per_request} µs CPU/req`,
    );
    const fullAndDistributed = await runFullAndDistributed(options, fullTemplate, entries, index);
    console.log(`run ${index + 1}/${options.runs}: bare fastify ...`);
    const bare = await benchBare(options, template, vigil.half.connections);
    console.log(
      `  ${bare.max.rps} req/s, p99 ${bare.max.p99_ms} ms; paced like vigil's half load ${bare.paced.rps} req/s, p99 ${bare.paced.p99_ms} ms`,
    );
    runs.push({
      bare,
      vigil,
      vigil_policy: vigilPolicy,
      ratio: round2(vigil.max.rps / bare.max.rps),
      ratio_with_policy: round2(vigilPolicy.max.rps / bare.max.rps),
      ...fullAndDistributed,
      ratio_full: round2(fullAndDistributed.vigil_full.max.rps / bare.max.rps),
    });
  }
  if (options.profile) {
    profile = options.distributedOnly
      ? await profileDistributed(options, fullTemplate, entries)
      : await profileVigil(options, template);
  }
  const summary = summarise(runs);
  const loadAfter = loadavg();
  printTable(summary, runs.length);
  const loads = (values) => values.map((value) => value.toFixed(2)).join(', ');
  console.log(`load average (1, 5, 15 min): ${loads(loadBefore)} before, ${loads(loadAfter)} after`);
  if (profile !== undefined) {
    console.log(
      `\nVigil CPU profile, ${profile.file} (${profile.rps_under_profiler} req/s under the profiler), self time:`,
    );
    for (const { site, self_percent } of profile.top_self_time.slice(0, 15)) {
      console.log(`  ${self_percent.toFixed(1).padStart(5)}%  ${site}`);
    }
  }
  const report = {
    date: new Date().toISOString(),
    machine: machine(),
    options: {
      quick: options.quick,
      distributed_only: options.distributedOnly,
      runs: options.runs,
      profile: options.profile,
      threads: 1,
      connections: options.connections,
      seconds: options.seconds,
      half_load_think_ms: options.thinkMs,
      body_bytes: bodyBytes,
      policy_rules: httpPolicy.rules.length,
      full_configuration: {
        rules: fullHttpPolicy.rules.length,
        features: Object.keys(featureDefinitions),
        lists: Object.fromEntries(Object.entries(entries).map(([name, list]) => [name, list.length])),
        key_spread: keySpread,
      },
    },
    load_average: { before: loadBefore.map(round2), after: loadAfter.map(round2) },
    summary,
    runs,
    ...(profile !== undefined && { profile }),
  };
  mkdirSync(resultsDir, { recursive: true });
  // A --distributed-only run has its own file, so it does not replace the last full run's figures.
  const file = options.distributedOnly ? 'distributed-latest.json' : 'latest.json';
  writeFileSync(join(resultsDir, file), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote bench/results/${file}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`\nbench FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
