// Counter store benchmark: updates+reads per second of the in-memory store on one core, and memory
// per (count feature, key) with a 24 h window. Run: `npx tsc -b && node --expose-gc bench/counters.mjs`.
import { MemoryCounterStore } from '../packages/engine/dist/index.js';

const keys = Number(process.env.KEYS ?? 1_000_000);
const operations = Number(process.env.OPS ?? 3_000_000);
const day = 24 * 60 * 60 * 1000;
const start = 1_800_000_000_000;

function gc() {
  if (globalThis.gc === undefined) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) globalThis.gc();
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// 1. Memory per key: one count feature, 24 h window, `keys` keys each updated once.
gc();
const before = process.memoryUsage();
let store = new MemoryCounterStore();
const count = { id: 'count_24h', aggregation: 'count', windowMs: day };
const names = Array.from({ length: keys }, (_, i) => `acct-${i}`);
gc();
const withNames = process.memoryUsage();
for (let i = 0; i < keys; i++)
  store.applyNow(start + i, [{ counter: count, key: names[i], update: true, value: null }]);
gc();
const after = process.memoryUsage();
const used = (m) => m.heapUsed + m.arrayBuffers;
const perKey = (used(after) - used(withNames)) / keys;
const keyStrings = (used(withNames) - used(before)) / keys;

// 2. Throughput: each operation updates one key's count and reads it (as a decision does), keys
// drawn from the populated set, time moving forward 1 ms per 100 operations (buckets advance).
const runs = [];
for (let run = 0; run < 5; run++) {
  let x = 12345 + run;
  const began = process.hrtime.bigint();
  for (let i = 0; i < operations; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    store.applyNow(start + keys + i / 100, [
      { counter: count, key: names[x % keys], update: true, value: null },
    ]);
  }
  const seconds = Number(process.hrtime.bigint() - began) / 1e9;
  runs.push(operations / seconds);
}
// 3. The async port as the feature stage calls it (one promise per decision).
const asyncRuns = [];
for (let run = 0; run < 3; run++) {
  let x = 999 + run;
  const began = process.hrtime.bigint();
  for (let i = 0; i < operations / 3; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    await store.apply(start + keys + i / 100, [
      { counter: count, key: names[x % keys], update: true, value: null },
    ]);
  }
  asyncRuns.push(operations / 3 / (Number(process.hrtime.bigint() - began) / 1e9));
}
store = undefined;

const result = {
  node: process.version,
  keys,
  bytes_per_key: Math.round(perKey),
  key_string_bytes_not_counted: Math.round(keyStrings),
  updates_plus_reads_per_second_sync: Math.round(median(runs)),
  updates_plus_reads_per_second_async_port: Math.round(median(asyncRuns)),
};
console.log(JSON.stringify(result, null, 2));
