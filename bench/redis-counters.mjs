// RedisCounterStore throughput: events per second with 8 counters per event, one `apply` per
// event, 16 events in flight, against a Redis (default the local one). Keys use a fresh prefix
// and are deleted at the end.
//
//   npx tsc -b && node bench/redis-counters.mjs
//   REDIS_URL=redis+cluster://127.0.0.1:7000,127.0.0.1:7001 SECONDS=10 node bench/redis-counters.mjs
//
// Entities are drawn from ENTITIES (default 10,000) accounts, devices and IPs, so most keys hold
// many buckets, as hot keys do. Prints one line per run and a "BENCH_RESULT {json}" line.
import { randomUUID } from 'node:crypto';
import { createRedisClient, RedisCounterStore, whenReady } from '../packages/store-redis/dist/index.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const seconds = Number(process.env.SECONDS ?? 5);
const runs = Number(process.env.RUNS ?? 3);
const inFlight = Number(process.env.IN_FLIGHT ?? 16);
const entities = Number(process.env.ENTITIES ?? 10_000);
const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;

const spec = (name, aggregation, windowMs) => ({ id: `bench\u0000${name}\u00001`, aggregation, windowMs });
const counters = [
  { counter: spec('logins_ip_1h', 'count', hour), by: 'ip', value: () => null },
  { counter: spec('events_account_10m', 'count', 10 * minute), by: 'account', value: () => null },
  { counter: spec('amount_account_24h', 'sum', day), by: 'account', value: (n) => (n % 500) + 0.5 },
  { counter: spec('avg_amount_device_24h', 'avg', day), by: 'device', value: (n) => n % 300 },
  { counter: spec('max_amount_ip_1h', 'max', hour), by: 'ip', value: (n) => n % 1000 },
  { counter: spec('accounts_device_24h', 'distinct', day), by: 'device', value: (n) => `acct-${n % 50}` },
  { counter: spec('ips_account_1h', 'distinct', hour), by: 'account', value: (n) => `10.0.${n % 7}.1` },
  { counter: spec('first_seen_device', 'first_seen', day), by: 'device', value: () => null },
];

const client = createRedisClient(url, { commandTimeoutMs: 2000 });
client.on('error', () => {});
await whenReady(client, 10_000);
const prefix = `vigil-bench:${randomUUID().slice(0, 8)}:`;
const store = new RedisCounterStore(client, { keyPrefix: prefix });
await store.ready();

let sequence = 0;
function event() {
  const n = sequence++;
  // A cheap, well-spread pseudo-random entity per event.
  const pick = (salt) => (Math.imul(n + salt, 2_654_435_761) >>> 0) % entities;
  const keys = {
    ip: `203.0.${pick(1) % 256}.${pick(1) >> 8}`,
    account: `u-${pick(2)}`,
    device: `d-${pick(3)}`,
  };
  return counters.map(({ counter, by, value }) => ({
    counter,
    key: keys[by],
    update: true,
    value: value(n),
  }));
}

async function measure(durationMs) {
  let done = 0;
  const until = Date.now() + durationMs;
  const worker = async () => {
    while (Date.now() < until) {
      await store.apply(Date.now(), event());
      done++;
    }
  };
  const started = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  return { eventsPerSecond: done / elapsed, clientCpuMicrosPerEvent: (cpu.user + cpu.system) / done };
}

const results = [];
try {
  await measure(1000); // warm-up: scripts loaded, keys populated
  for (let run = 0; run < runs; run++) {
    const result = await measure(seconds * 1000);
    results.push(result);
    console.log(
      `run ${run + 1}: ${Math.round(result.eventsPerSecond)} events/s, ` +
        `${result.clientCpuMicrosPerEvent.toFixed(1)} µs client CPU per event`,
    );
  }
} finally {
  store.close();
  const keys = await store.keys();
  // One key per command, so it works on a cluster too.
  for (let index = 0; index < keys.length; index += 1000)
    await Promise.all(keys.slice(index, index + 1000).map((key) => client.unlink(key)));
  await client.quit();
}
const sorted = results.map((result) => result.eventsPerSecond).sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)];
console.log(
  `BENCH_RESULT ${JSON.stringify({ url: url.replace(/\/\/[^@]*@/, '//'), counters: counters.length, inFlight, entities, medianEventsPerSecond: Math.round(median) })}`,
);
