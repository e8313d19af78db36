// Rule evaluation benchmark: the reference policy (bench/reference-policy.mjs, 30 CEL rules) run per
// event by Vigil's engine, hand-written closures, @marcbachmann/cel-js, @bufbuild/cel and
// json-rules-engine. What it measures and why is in docs/BENCHMARKS.md, "Rule evaluation".
//
//   node bench/rules.mjs               verify that every engine agrees, then time each engine
//   node bench/rules.mjs --quick       the same with shorter timings (a smoke run)
//   node bench/rules.mjs --verify-only agreement only, no timing
//   node bench/rules.mjs --rounds=N    N rounds of timings (default 5, 1 with --quick)
//
// Needs a build of the engine (`tsc -b`). Each engine is timed in its own `node` process
// (`--engine=<name> --mode=decision|rules`, internal), so no engine's JIT feedback pollutes
// another's; the parent checks each child's checksum of verdicts and hits against the verified
// outcomes. Rates are per CPU second of the timing process (also reported per wall second), since
// the machine is shared: on a quiet machine the two agree.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as bufParse, plan as bufPlan, celEnv, isCelError } from '@bufbuild/cel';
import { Environment as CelJsEnvironment } from '@marcbachmann/cel-js';
import {
  Rule as JsonRule,
  Engine as JsonRulesEngine,
  Operator as JsonRulesOperator,
} from 'json-rules-engine';
import { celRuleCompiler, compilePolicy, evaluatePolicy } from '../packages/engine/dist/index.js';
import { activationOf } from '../packages/engine/dist/policy/policy-stage.js';
import {
  eventTypeSchema,
  featureTypes,
  generateEvents,
  referencePolicy,
  rules,
} from './reference-policy.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const resultsDir = join(root, 'bench', 'results');

const EVENT_COUNT = 10_000;
const SEED = 20261125;
/** json-rules-engine is async and about 100× slower: it is timed on the first events only. */
const JRE_SAMPLE = 1_000;
const ENGINES = [
  'hand-written',
  'vigil',
  'cel-js',
  'bufbuild-cel',
  'json-rules-engine',
  'vigil-server-activation',
  'hand-written-server-activation',
];
const LABELS = {
  'hand-written': 'hand-written closures (ceiling)',
  vigil: 'Vigil (celRuleCompiler + evaluatePolicy)',
  'cel-js': '@marcbachmann/cel-js',
  'bufbuild-cel': '@bufbuild/cel',
  'json-rules-engine': 'json-rules-engine',
  'vigil-server-activation': "Vigil, the server's activationOf",
  'hand-written-server-activation': "hand-written, the server's activationOf",
};
/** Engines timed in both modes; the others in `decision` mode only. */
const RULES_MODE = new Set(['hand-written', 'vigil', 'cel-js', 'bufbuild-cel']);
const targets = { vigilShareOfHandWritten: 0.5 };

// ---------------------------------------------------------------------------------------------
// Options

function parseOptions(argv) {
  const options = { quick: false, verifyOnly: false, engine: undefined, mode: 'decision', rounds: undefined };
  for (const argument of argv) {
    if (argument === '--quick') options.quick = true;
    else if (argument === '--verify-only') options.verifyOnly = true;
    else if (argument.startsWith('--engine=') && ENGINES.includes(argument.slice(9)))
      options.engine = argument.slice(9);
    else if (argument === '--mode=rules' || argument === '--mode=decision') options.mode = argument.slice(7);
    else if (/^--rounds=\d+$/.test(argument)) options.rounds = Math.max(1, Number(argument.slice(9)));
    else throw new Error(`unknown argument: ${argument} (use --quick, --verify-only, --rounds=N)`);
  }
  // One timing process per engine, mode and round. The rate of one process moves by up to 4x
  // from one process to the next on this kind of VM (the same code, the same events: the 10,000
  // events do not fit in the cache, so it depends on what else uses the host's cache), and stays
  // put within a process. So the figure is the median over processes, and there are five.
  options.rounds ??= options.quick ? 1 : 5;
  // Each timed pass runs the events as many times as it takes to last at least `passMs`.
  options.timing = options.quick
    ? { warmupMs: 300, passMs: 150, passes: 3 }
    : { warmupMs: 1500, passMs: 600, passes: 5 };
  return options;
}

// ---------------------------------------------------------------------------------------------
// The policy as the decision path sees it

const eventFields = Object.fromEntries(
  Object.entries(eventTypeSchema.fields).map(([name, spec]) => [name, spec.type]),
);
const intFields = Object.entries(eventTypeSchema.fields)
  .filter(([, spec]) => spec.type === 'integer')
  .map(([name]) => name);
const intFeatures = Object.entries(featureTypes)
  .filter(([, type]) => type === 'int')
  .map(([name]) => name);

/** A compiled policy whose rule conditions are `compiled` (the interface Vigil's compiler fills). */
const policyOf = (compiled) => ({
  version: 1,
  strategy: 'worst',
  thresholds: {},
  onMissing: 'not_hit',
  rules: compiled,
});

/**
 * The rule activation of an event in a fixed shape: the fields as `JSON.parse` gives them from a
 * body (objects with the same keys share a hidden class; the two optional fields make 4 shapes),
 * plus `type`, `id` and `timestamp` added in place.
 */
function vigilActivation(event) {
  const fields = JSON.parse(JSON.stringify(event.fields));
  fields.type = 'payment';
  fields.id = event.id;
  fields.timestamp = '2026-11-25T12:00:00.000Z';
  return { event: fields, features: JSON.parse(JSON.stringify(event.features)), models: {} };
}

/**
 * The activation as the server builds it: the server's own `activationOf` (policy-stage.ts) on a
 * decision context of the parsed event (a copy of its fields plus type, id and timestamp).
 */
function serverActivation(event) {
  return activationOf({
    event: {
      type: 'payment',
      id: event.id,
      timestamp: '2026-11-25T12:00:00.000Z',
      fields: JSON.parse(JSON.stringify(event.fields)),
    },
    features: JSON.parse(JSON.stringify(event.features)),
  });
}

/** The same, with CEL ints as bigints: @marcbachmann/cel-js and @bufbuild/cel read a JS number as a double. */
function bigintActivation(event) {
  const activation = vigilActivation(event);
  for (const name of intFields) activation.event[name] = BigInt(activation.event[name]);
  for (const name of intFeatures) activation.features[name] = BigInt(activation.features[name]);
  return { event: activation.event, features: activation.features };
}

const failure = (message) => ({ failure: true, message, missing: false });
const DIVISION_BY_ZERO = failure('division by zero');

// ---------------------------------------------------------------------------------------------
// (b) Hand-written closures: the same 30 rules as plain JavaScript, with CEL's semantics on this
// data (ASCII strings, so `size()` is `length`; int division truncates and errors on zero).

const HIGH_RISK = new Set(['NG', 'GH', 'PK', 'VN', 'ID', 'RO', 'UA']);
const SANCTIONED = new Set(['KP', 'IR', 'SY', 'CU']);
const CRYPTO = new Set(['BTC', 'ETH', 'USDT']);
const EURO = new Set(['FR', 'DE', 'ES', 'IT', 'NL']);
const GAMBLING = new Set(['7995', '7800', '7801', '7802']);
const TRANSFER = new Set(['4829', '6051']);
const RISKY_RECENT = new Set(['NG', 'KP', 'IR', 'RU']);

const handWritten = {
  'amount-very-high': (e) => e.amount >= 10000,
  'new-account-high-amount': (e) => e.account_age_days < 7 && e.amount > 1000,
  'bin-country-mismatch': (e) => e.bin_country !== e.country,
  'high-risk-country': (e) => HIGH_RISK.has(e.country),
  'sanctioned-country': (e) => SANCTIONED.has(e.country) || SANCTIONED.has(e.bin_country),
  'disposable-email': (e) =>
    e.email.endsWith('@mailinator.com') ||
    e.email.endsWith('@yopmail.com') ||
    e.email.endsWith('@guerrillamail.com') ||
    e.email.endsWith('@10minutemail.com'),
  'plus-alias-new-account': (e) => e.email.includes('+') && e.account_age_days < 30,
  'unverified-email-amount': (e) => !e.email_verified && e.amount > 300,
  'new-device-amount': (e) => e.is_new_device && e.amount > 500,
  'failed-logins-burst': (e) => e.failed_logins_1h >= 5,
  'failed-logins-new-device': (e) => e.failed_logins_1h >= 2 && e.is_new_device,
  'tor-exit-ip': (e) => e.ip.startsWith('185.220.') || e.ip.startsWith('171.25.193.'),
  'crypto-currency': (e) => CRYPTO.has(e.currency),
  'currency-country-mismatch': (e) =>
    (e.country === 'US' && e.currency !== 'USD') ||
    (EURO.has(e.country) && e.currency !== 'EUR') ||
    (e.country === 'GB' && e.currency !== 'GBP'),
  'gambling-new-account': (e) => GAMBLING.has(e.merchant_category) && e.account_age_days < 30,
  'money-transfer-foreign-card': (e) => TRANSFER.has(e.merchant_category) && e.bin_country !== e.country,
  'headless-browser': (e) =>
    e.channel === 'web' &&
    (e.user_agent.includes('HeadlessChrome') ||
      e.user_agent.includes('PhantomJS') ||
      e.user_agent.length === 0),
  'pos-foreign-card': (e) => e.channel === 'pos' && e.bin_country !== e.country,
  'round-amount': (e) => e.amount >= 500 && Number.isInteger(e.amount) && e.amount % 100 === 0,
  'channel-amount-threshold': (e) =>
    e.amount > (e.channel === 'app' ? 1500 : 4000) && e.account_age_days < 90,
  'emulator-device': (e) => e.device_id.startsWith('emu-') || e.device_id.length < 8,
  'shipping-mismatch': (e) =>
    e.shipping_country !== undefined && e.shipping_country !== e.country && e.amount > 200,
  'no-phone-high-amount': (e) => e.phone === undefined && e.amount > 1000,
  'risky-recent-country': (e) => {
    const list = e.recent_countries;
    for (let index = 0; index < list.length; index += 1) if (RISKY_RECENT.has(list[index])) return true;
    return false;
  },
  'country-hopping': (e) => e.recent_countries.length >= 3 && !e.recent_countries.includes(e.country),
  'velocity-1h': (_e, f) => f.txn_count_1h > 10,
  'card-testing': (e, f) => f.distinct_cards_24h >= 4 && e.amount < 5,
  'spend-24h': (e, f) => f.amount_sum_24h + e.amount > 10000 && e.account_age_days < 180,
  'amount-spike': (e, f) => f.txn_count_24h >= 3 && e.amount > 4 * (f.amount_sum_24h / f.txn_count_24h),
  // `a || b` with `a` an error: true when `b` is true, else the error (CEL's commutative logic).
  'velocity-per-account-day': (e, f) => {
    const burst = f.txn_count_1h * 2 + e.failed_logins_1h * 3 > 30;
    if (e.account_age_days === 0) return burst ? true : DIVISION_BY_ZERO;
    return Math.trunc(f.txn_count_24h / e.account_age_days) >= 5 || burst;
  },
};

// ---------------------------------------------------------------------------------------------
// (e) json-rules-engine: the same rules as JSON conditions. String functions and `has()` are custom
// operators; arithmetic is a dynamic fact computed from other facts, the library's own idiom.

const jreOperators = [
  new JsonRulesOperator(
    'startsWith',
    (fact, value) => fact.startsWith(value),
    (fact) => typeof fact === 'string',
  ),
  new JsonRulesOperator(
    'endsWith',
    (fact, value) => fact.endsWith(value),
    (fact) => typeof fact === 'string',
  ),
  new JsonRulesOperator(
    'hasSubstring',
    (fact, value) => fact.includes(value),
    (fact) => typeof fact === 'string',
  ),
  new JsonRulesOperator('sizeLessThan', (fact, value) => fact.length < value),
  new JsonRulesOperator('sizeEqual', (fact, value) => fact.length === value),
  new JsonRulesOperator('sizeAtLeast', (fact, value) => fact.length >= value),
  new JsonRulesOperator('anyIn', (fact, value) => fact.some((item) => value.includes(item)), Array.isArray),
  new JsonRulesOperator('isPresent', (fact, value) => (fact !== undefined) === value),
  new JsonRulesOperator(
    'wholeMultipleOf',
    (fact, value) => Number.isInteger(fact) && Math.trunc(fact) % value === 0,
    (fact) => typeof fact === 'number',
  ),
];

/** Facts derived from others, computed on demand per run. */
const jreDynamicFacts = {
  channel_amount_limit: async (_params, almanac) =>
    (await almanac.factValue('channel')) === 'app' ? 1500 : 4000,
  amount_plus_sum_24h: async (_params, almanac) =>
    (await almanac.factValue('amount_sum_24h')) + (await almanac.factValue('amount')),
  four_times_average_24h: async (_params, almanac) =>
    4 * ((await almanac.factValue('amount_sum_24h')) / (await almanac.factValue('txn_count_24h'))),
  // An int division by zero has no value: the condition on it is false (CEL: an error; with
  // `on_missing: not_hit` the rule does not hit either way).
  txn_24h_per_account_day: async (_params, almanac) => {
    const days = await almanac.factValue('account_age_days');
    return days === 0 ? undefined : Math.trunc((await almanac.factValue('txn_count_24h')) / days);
  },
  burst_points: async (_params, almanac) =>
    (await almanac.factValue('txn_count_1h')) * 2 + (await almanac.factValue('failed_logins_1h')) * 3,
};

const c = (fact, operator, value) => ({ fact, operator, value });
const factRef = (fact) => ({ fact });
const all = (...conditions) => ({ all: conditions });
const any = (...conditions) => ({ any: conditions });

const jreConditions = {
  'amount-very-high': all(c('amount', 'greaterThanInclusive', 10000)),
  'new-account-high-amount': all(c('account_age_days', 'lessThan', 7), c('amount', 'greaterThan', 1000)),
  'bin-country-mismatch': all(c('bin_country', 'notEqual', factRef('country'))),
  'high-risk-country': all(c('country', 'in', [...HIGH_RISK])),
  'sanctioned-country': any(c('country', 'in', [...SANCTIONED]), c('bin_country', 'in', [...SANCTIONED])),
  'disposable-email': any(
    c('email', 'endsWith', '@mailinator.com'),
    c('email', 'endsWith', '@yopmail.com'),
    c('email', 'endsWith', '@guerrillamail.com'),
    c('email', 'endsWith', '@10minutemail.com'),
  ),
  'plus-alias-new-account': all(c('email', 'hasSubstring', '+'), c('account_age_days', 'lessThan', 30)),
  'unverified-email-amount': all(c('email_verified', 'equal', false), c('amount', 'greaterThan', 300)),
  'new-device-amount': all(c('is_new_device', 'equal', true), c('amount', 'greaterThan', 500)),
  'failed-logins-burst': all(c('failed_logins_1h', 'greaterThanInclusive', 5)),
  'failed-logins-new-device': all(
    c('failed_logins_1h', 'greaterThanInclusive', 2),
    c('is_new_device', 'equal', true),
  ),
  'tor-exit-ip': any(c('ip', 'startsWith', '185.220.'), c('ip', 'startsWith', '171.25.193.')),
  'crypto-currency': all(c('currency', 'in', [...CRYPTO])),
  'currency-country-mismatch': any(
    all(c('country', 'equal', 'US'), c('currency', 'notEqual', 'USD')),
    all(c('country', 'in', [...EURO]), c('currency', 'notEqual', 'EUR')),
    all(c('country', 'equal', 'GB'), c('currency', 'notEqual', 'GBP')),
  ),
  'gambling-new-account': all(
    c('merchant_category', 'in', [...GAMBLING]),
    c('account_age_days', 'lessThan', 30),
  ),
  'money-transfer-foreign-card': all(
    c('merchant_category', 'in', [...TRANSFER]),
    c('bin_country', 'notEqual', factRef('country')),
  ),
  'headless-browser': all(
    c('channel', 'equal', 'web'),
    any(
      c('user_agent', 'hasSubstring', 'HeadlessChrome'),
      c('user_agent', 'hasSubstring', 'PhantomJS'),
      c('user_agent', 'sizeEqual', 0),
    ),
  ),
  'pos-foreign-card': all(c('channel', 'equal', 'pos'), c('bin_country', 'notEqual', factRef('country'))),
  'round-amount': all(c('amount', 'greaterThanInclusive', 500), c('amount', 'wholeMultipleOf', 100)),
  'channel-amount-threshold': all(
    c('amount', 'greaterThan', factRef('channel_amount_limit')),
    c('account_age_days', 'lessThan', 90),
  ),
  'emulator-device': any(c('device_id', 'startsWith', 'emu-'), c('device_id', 'sizeLessThan', 8)),
  'shipping-mismatch': all(
    c('shipping_country', 'isPresent', true),
    c('shipping_country', 'notEqual', factRef('country')),
    c('amount', 'greaterThan', 200),
  ),
  'no-phone-high-amount': all(c('phone', 'isPresent', false), c('amount', 'greaterThan', 1000)),
  'risky-recent-country': all(c('recent_countries', 'anyIn', [...RISKY_RECENT])),
  'country-hopping': all(
    c('recent_countries', 'sizeAtLeast', 3),
    c('recent_countries', 'doesNotContain', factRef('country')),
  ),
  'velocity-1h': all(c('txn_count_1h', 'greaterThan', 10)),
  'card-testing': all(c('distinct_cards_24h', 'greaterThanInclusive', 4), c('amount', 'lessThan', 5)),
  'spend-24h': all(c('amount_plus_sum_24h', 'greaterThan', 10000), c('account_age_days', 'lessThan', 180)),
  'amount-spike': all(
    c('txn_count_24h', 'greaterThanInclusive', 3),
    c('amount', 'greaterThan', factRef('four_times_average_24h')),
  ),
  'velocity-per-account-day': any(
    c('txn_24h_per_account_day', 'greaterThanInclusive', 5),
    c('burst_points', 'greaterThan', 30),
  ),
};

// ---------------------------------------------------------------------------------------------
// Engines. Each one: `prepare(event)` builds its input once, outside the timing; `decide(input)`
// is the measured work and returns Vigil's PolicyOutcome shape. Every engine but json-rules-engine
// goes through Vigil's `evaluatePolicy` (worst strategy), so only the rule evaluation differs.

function byRuleOrder(table, what) {
  const missing = rules
    .filter((candidate) => table[candidate.id] === undefined)
    .map((candidate) => candidate.id);
  if (missing.length > 0 || Object.keys(table).length !== rules.length) {
    throw new Error(`${what} does not cover exactly the reference rules (missing: ${missing.join(', ')})`);
  }
  return rules.map((candidate) => table[candidate.id]);
}

/**
 * A synchronous engine: `decide` is Vigil's decision path (`evaluatePolicy`, worst strategy);
 * `evaluateRules` makes the same per-rule calls without the aggregation, and returns hits + 100 ×
 * errors.
 */
function syncEngine(prepare, policy) {
  const compiled = policy.rules;
  const count = compiled.inputs.length;
  return {
    prepare,
    decide: (activation) => evaluatePolicy(policy, activation),
    evaluateRules(activation) {
      compiled.prepare(activation);
      let sum = 0;
      for (let index = 0; index < count; index += 1) {
        const result = compiled.evaluate(index, activation);
        sum += result === true ? 1 : result === false ? 0 : 100;
      }
      return sum;
    },
  };
}

function createVigil(activation = vigilActivation) {
  const environment = { eventFields, features: featureTypes, lists: [], models: [] };
  const record = {
    tenantId: 'bench',
    eventType: 'payment',
    version: 1,
    policy: referencePolicy,
    createdAt: new Date(0).toISOString(),
    createdBy: 'bench',
  };
  const policy = compilePolicy(celRuleCompiler(), record, environment);
  return syncEngine(activation, policy);
}

function createHandWritten(activation = vigilActivation) {
  const closures = byRuleOrder(handWritten, 'the hand-written closures');
  const policy = policyOf({
    inputs: rules,
    prepare() {},
    evaluate: (index, values) => closures[index](values.event, values.features),
  });
  return syncEngine(activation, policy);
}

function createCelJs() {
  const environment = new CelJsEnvironment()
    .registerVariable('event', 'map')
    .registerVariable('features', 'map');
  const programs = rules.map((candidate) => environment.parse(candidate.when));
  const policy = policyOf({
    inputs: rules,
    prepare() {},
    evaluate(index, activation) {
      try {
        const value = programs[index](activation);
        return typeof value === 'boolean' ? value : failure('the rule did not yield a boolean');
      } catch (error) {
        return failure(error instanceof Error ? error.message : String(error));
      }
    },
  });
  return syncEngine(bigintActivation, policy);
}

function createBufbuild() {
  const environment = celEnv();
  const programs = rules.map((candidate) => bufPlan(environment, bufParse(candidate.when)));
  const policy = policyOf({
    inputs: rules,
    prepare() {},
    evaluate(index, activation) {
      const value = programs[index](activation);
      if (typeof value === 'boolean') return value;
      return failure(isCelError(value) ? value.message : 'the rule did not yield a boolean');
    },
  });
  return syncEngine(bigintActivation, policy);
}

function createJsonRulesEngine() {
  const conditions = byRuleOrder(jreConditions, 'the json-rules-engine rules');
  const engine = new JsonRulesEngine([], { allowUndefinedFacts: true });
  for (const operator of jreOperators) engine.addOperator(operator);
  for (const [name, compute] of Object.entries(jreDynamicFacts)) engine.addFact(name, compute);
  rules.forEach((candidate, index) => {
    engine.addRule(
      new JsonRule({ name: candidate.id, conditions: conditions[index], event: { type: candidate.id } }),
    );
  });
  const indexOf = new Map(rules.map((candidate, index) => [candidate.id, index]));
  // The hit results of one run, read by evaluatePolicy so the outcome is aggregated the same way.
  let hits = new Array(rules.length).fill(false);
  const policy = policyOf({ inputs: rules, prepare() {}, evaluate: (index) => hits[index] });
  return {
    prepare: (event) => ({ ...event.fields, ...event.features }),
    async decide(facts) {
      const { results } = await engine.run(facts);
      hits = new Array(rules.length).fill(false);
      for (const result of results) hits[indexOf.get(result.name)] = true;
      return evaluatePolicy(policy, {});
    },
  };
}

const factories = {
  'hand-written': createHandWritten,
  vigil: () => createVigil(),
  'vigil-server-activation': () => createVigil(serverActivation),
  'hand-written-server-activation': () => createHandWritten(serverActivation),
  'cel-js': createCelJs,
  'bufbuild-cel': createBufbuild,
  'json-rules-engine': createJsonRulesEngine,
};

const SEVERITY = { accept: 0, challenge: 1, review: 2, reject: 3 };

/** What must agree between engines for one event. json-rules-engine has no rule errors. */
function signature(outcome, withErrors = true) {
  const hits = outcome.rules.map((hit) => hit.id).join(',');
  const errors = withErrors ? ` errors=[${outcome.errors.map((error) => error.rule).join(',')}]` : '';
  return `${outcome.verdict} score=${outcome.score} hits=[${hits}]${errors}`;
}

/** A number that depends on every verdict and hit, so no work can be skipped. */
const checksumOf = (outcome) => SEVERITY[outcome.verdict] * 1000 + outcome.score + outcome.rules.length * 7;

// ---------------------------------------------------------------------------------------------
// Verification: every engine, every event, every rule outcome.

async function verify(events) {
  const outcomes = {};
  for (const name of ENGINES) {
    const engine = factories[name]();
    const list = [];
    for (const event of events) list.push(await engine.decide(engine.prepare(event)));
    outcomes[name] = list;
  }
  const mismatches = [];
  for (const name of ENGINES) {
    if (name === 'hand-written') continue;
    const withErrors = name !== 'json-rules-engine';
    let count = 0;
    events.forEach((event, index) => {
      const expected = signature(outcomes['hand-written'][index], withErrors);
      const actual = signature(outcomes[name][index], withErrors);
      if (expected === actual) return;
      count += 1;
      if (count <= 5) mismatches.push({ engine: name, event, expected, actual });
    });
    if (count > 5) mismatches.push({ engine: name, more: count - 5 });
  }
  const reference = outcomes['hand-written'];
  const ruleHits = Object.fromEntries(rules.map((candidate) => [candidate.id, 0]));
  const ruleErrors = {};
  const verdicts = { accept: 0, challenge: 0, review: 0, reject: 0 };
  let hitCount = 0;
  for (const outcome of reference) {
    verdicts[outcome.verdict] += 1;
    hitCount += outcome.rules.length;
    for (const hit of outcome.rules) ruleHits[hit.id] += 1;
    for (const error of outcome.errors) ruleErrors[error.rule] = (ruleErrors[error.rule] ?? 0) + 1;
  }
  const checksum = (count) =>
    reference.slice(0, count).reduce((sum, outcome) => sum + checksumOf(outcome), 0);
  const rulesChecksum = reference.reduce(
    (sum, outcome) => sum + outcome.rules.length + 100 * outcome.errors.length,
    0,
  );
  return {
    mismatches,
    stats: {
      verdicts,
      mean_hits_per_event: Math.round((hitCount / reference.length) * 100) / 100,
      rules_never_hit: Object.entries(ruleHits)
        .filter(([, count]) => count === 0)
        .map(([id]) => id),
      rule_hits: ruleHits,
      rule_errors: ruleErrors,
    },
    checksums: {
      decision: checksum(events.length),
      jre: checksum(Math.min(JRE_SAMPLE, events.length)),
      rules: rulesChecksum,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Timing one engine (in a child process)

/**
 * Times one engine over the events. `decision` mode: the whole decision (`evaluatePolicy`); `rules`
 * mode: the 30 rule conditions only.
 */
async function timeEngine(name, mode, timing) {
  const events = generateEvents(EVENT_COUNT, SEED);
  const engine = factories[name]();
  const isAsync = name === 'json-rules-engine';
  const inputs = (isAsync ? events.slice(0, JRE_SAMPLE) : events).map(engine.prepare);
  const { decide, evaluateRules } = engine;
  let runOnce;
  if (isAsync) {
    runOnce = async () => {
      let sum = 0;
      for (let index = 0; index < inputs.length; index += 1) sum += checksumOf(await decide(inputs[index]));
      return sum;
    };
  } else if (mode === 'rules') {
    runOnce = () => {
      let sum = 0;
      for (let index = 0; index < inputs.length; index += 1) sum += evaluateRules(inputs[index]);
      return sum;
    };
  } else {
    runOnce = () => {
      let sum = 0;
      for (let index = 0; index < inputs.length; index += 1) sum += checksumOf(decide(inputs[index]));
      return sum;
    };
  }
  const firstChecksum = await runOnce();
  // Warm up, and learn how many rounds over the events a pass needs to last `passMs`.
  let rounds = 0;
  const warmStart = performance.now();
  while (performance.now() - warmStart < timing.warmupMs) {
    await runOnce();
    rounds += 1;
  }
  const perRoundMs = (performance.now() - warmStart) / rounds;
  const roundsPerPass = Math.max(1, Math.ceil(timing.passMs / perRoundMs));
  const passes = [];
  for (let pass = 0; pass < timing.passes; pass += 1) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    for (let round = 0; round < roundsPerPass; round += 1) {
      if ((await runOnce()) !== firstChecksum) throw new Error(`${name}: outcomes changed between rounds`);
    }
    const cpu = process.cpuUsage(cpuStart);
    const wallSeconds = (performance.now() - start) / 1000;
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const work = inputs.length * roundsPerPass;
    passes.push({
      per_cpu_second: Math.round(work / cpuSeconds),
      per_wall_second: Math.round(work / wallSeconds),
    });
  }
  return {
    engine: name,
    mode,
    events: inputs.length,
    rounds_per_pass: roundsPerPass,
    passes,
    checksum: firstChecksum,
  };
}

function runChild(name, mode, quick) {
  return new Promise((resolve, reject) => {
    const args = [
      fileURLToPath(import.meta.url),
      `--engine=${name}`,
      `--mode=${mode}`,
      ...(quick ? ['--quick'] : []),
    ];
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = output.split('\n').find((text) => text.startsWith('RULES_RESULT '));
      if (code !== 0 || line === undefined)
        reject(new Error(`timing ${name} (${mode}) failed (exit ${code}):\n${output}`));
      else resolve(JSON.parse(line.slice('RULES_RESULT '.length)));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Reporting

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const packageVersion = (name) =>
  JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;

function machine() {
  const cpuModel =
    /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model;
  return { nproc: cpus().length, cpu_model: cpuModel, node: process.version };
}

const loadAverage = () => loadavg().map((value) => Math.round(value * 100) / 100);

function printTable(results) {
  const rate = (figures) => (figures === undefined ? '-' : figures.median.toLocaleString('en-US'));
  const share = (figures) => (figures === undefined ? '-' : `${(figures.ratio * 100).toFixed(1)}%`);
  const spread = (figures) => {
    if (figures === undefined) return '-';
    const rates = figures.processes.map((process) => process.per_cpu_second);
    return `${Math.min(...rates).toLocaleString('en-US')}..${Math.max(...rates).toLocaleString('en-US')}`;
  };
  const rows = [
    [
      'engine',
      'events',
      'decision path/s',
      'processes min..max',
      'vs hand',
      'wall/s',
      'rules only/s',
      'vs hand',
    ],
    ...results.map((result) => [
      LABELS[result.engine],
      String(result.events),
      rate(result.decision),
      spread(result.decision),
      share(result.decision),
      result.decision.median_per_wall_second.toLocaleString('en-US'),
      rate(result.rules),
      share(result.rules),
    ]),
  ];
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const format = (row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])))
      .join('  ');
  console.log(
    "\nrule sets (the 30 rules on one event) per CPU second of the timing process; median over the processes of each one's median pass",
  );
  console.log(
    [
      '',
      format(rows[0]),
      widths.map((width) => '-'.repeat(width)).join('  '),
      ...rows.slice(1).map(format),
    ].join('\n'),
  );
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.engine !== undefined) {
    const result = await timeEngine(options.engine, options.mode, options.timing);
    process.stdout.write(`RULES_RESULT ${JSON.stringify(result)}\n`);
    return;
  }
  const loadBefore = loadAverage();
  const events = generateEvents(EVENT_COUNT, SEED);
  console.log(`rules: ${rules.length} CEL rules, ${events.length} payment events (seed ${SEED})`);
  console.log(`rules: verifying ${ENGINES.length} engines on every event ...`);
  const verification = await verify(events);
  const { stats } = verification;
  console.log(
    `rules: verdicts ${Object.entries(stats.verdicts)
      .map(([verdict, count]) => `${verdict} ${count}`)
      .join(
        ', ',
      )}; ${stats.mean_hits_per_event} hits per event; rule errors ${JSON.stringify(stats.rule_errors)}`,
  );
  if (stats.rules_never_hit.length > 0) console.log(`rules: never hit: ${stats.rules_never_hit.join(', ')}`);
  if (verification.mismatches.length > 0) {
    console.error('\nrules: ENGINES DISAGREE (expected = hand-written closures):');
    for (const mismatch of verification.mismatches) {
      if (mismatch.more !== undefined) {
        console.error(`  ${mismatch.engine}: ... and ${mismatch.more} more events`);
        continue;
      }
      console.error(`  ${mismatch.engine}, event ${mismatch.event.id}:`);
      console.error(`    expected ${mismatch.expected}`);
      console.error(`    actual   ${mismatch.actual}`);
      console.error(`    event    ${JSON.stringify(mismatch.event)}`);
    }
    throw new Error('the engines disagree on some rule outcomes');
  }
  console.log(
    'rules: all engines agree on every event (verdict, score, hit rules, and rule errors except json-rules-engine)',
  );
  if (options.verifyOnly) return;

  // Every engine and mode once per round, in turn, so a burst of load elsewhere on the machine
  // hits every engine alike; the figures are medians over all rounds' passes.
  const timed = ENGINES.map((name) => ({ engine: name }));
  for (let round = 1; round <= options.rounds; round += 1) {
    for (const row of timed) {
      const name = row.engine;
      for (const mode of RULES_MODE.has(name) ? ['decision', 'rules'] : ['decision']) {
        process.stdout.write(`rules: round ${round}/${options.rounds}, ${name}, ${mode} ...`);
        const result = await runChild(name, mode, options.quick);
        const { checksums } = verification;
        const expected =
          mode === 'rules'
            ? checksums.rules
            : name === 'json-rules-engine'
              ? checksums.jre
              : checksums.decision;
        if (result.checksum !== expected) {
          throw new Error(
            `${name} (${mode}): checksum ${result.checksum} in the timed run, ${expected} when verified`,
          );
        }
        row.events = result.events;
        row[mode] ??= { passes: [], processes: [] };
        row[mode].passes.push(...result.passes);
        row[mode].rounds_per_pass = result.rounds_per_pass;
        const cpuRates = result.passes.map((pass) => pass.per_cpu_second);
        const processRate = Math.round(median(cpuRates));
        row[mode].processes.push({
          per_cpu_second: processRate,
          per_wall_second: Math.round(median(result.passes.map((pass) => pass.per_wall_second))),
        });
        console.log(` ${processRate.toLocaleString('en-US')} per CPU second`);
      }
    }
  }
  for (const row of timed) {
    for (const mode of ['decision', 'rules']) {
      const figures = row[mode];
      if (figures === undefined) continue;
      // The median over the timing processes of each process's median pass (see `rounds`).
      figures.median = Math.round(median(figures.processes.map((process) => process.per_cpu_second)));
      figures.median_per_wall_second = Math.round(
        median(figures.processes.map((process) => process.per_wall_second)),
      );
    }
  }
  const hand = timed.find((result) => result.engine === 'hand-written');
  for (const row of timed) {
    for (const mode of ['decision', 'rules']) {
      if (row[mode] !== undefined)
        row[mode].ratio = Math.round((row[mode].median / hand[mode].median) * 1000) / 1000;
    }
  }
  const loadAfter = loadAverage();
  printTable(timed);

  // Targets are judged on the decision path, the one the server runs.
  const vigil = timed.find((result) => result.engine === 'vigil').decision;
  const libraries = timed.filter((result) =>
    ['cel-js', 'bufbuild-cel', 'json-rules-engine'].includes(result.engine),
  );
  const fastestLibrary = libraries.reduce((best, result) =>
    result.decision.median > best.decision.median ? result : best,
  );
  const targetResults = {
    vigil_share_of_hand_written: {
      target: `>= ${targets.vigilShareOfHandWritten}`,
      value: vigil.ratio,
      met: vigil.ratio >= targets.vigilShareOfHandWritten,
    },
    vigil_faster_than_every_library: {
      target: `> ${fastestLibrary.engine}`,
      value: Math.round((vigil.median / fastestLibrary.decision.median) * 100) / 100,
      met: vigil.median > fastestLibrary.decision.median,
    },
  };
  const mark = (met) => (met ? 'met' : 'NOT MET');
  const vigilRules = timed.find((result) => result.engine === 'vigil').rules;
  console.log(
    `\nVigil / hand-written      ${(vigil.ratio * 100).toFixed(1)}% decision path, ${(vigilRules.ratio * 100).toFixed(1)}% rules only   (target >= 50%: ${mark(targetResults.vigil_share_of_hand_written.met)})`,
  );
  console.log(
    `Vigil / fastest library   ${targetResults.vigil_faster_than_every_library.value}× ${fastestLibrary.engine}   (target > 1: ${mark(targetResults.vigil_faster_than_every_library.met)})`,
  );
  console.log(
    `load average before ${loadBefore.join(' ')}, after ${loadAfter.join(' ')} (nproc ${cpus().length})`,
  );

  const report = {
    date: new Date().toISOString(),
    machine: machine(),
    load_average: { before: loadBefore, after: loadAfter },
    libraries: Object.fromEntries(
      ['@marcbachmann/cel-js', '@bufbuild/cel', 'json-rules-engine'].map((name) => [
        name,
        packageVersion(name),
      ]),
    ),
    options: {
      quick: options.quick,
      rounds: options.rounds,
      events: EVENT_COUNT,
      seed: SEED,
      json_rules_engine_sample: JRE_SAMPLE,
      ...options.timing,
    },
    rate_unit: 'rule sets (all 30 rules on one event) per CPU second of the timing process',
    policy: { rules: rules.length, strategy: referencePolicy.strategy },
    agreement: { engines: ENGINES, events: events.length, disagreements: 0 },
    outcomes: stats,
    engines: timed,
    targets: targetResults,
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'rules-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log('wrote bench/results/rules-latest.json');
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`\nrules bench FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
