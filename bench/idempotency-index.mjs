// The decision service's idempotency index when full: ns per insert over 1.2M inserts at its
// default cap of 200,000 entries (each insert past the cap evicts the oldest). Run after a build:
// `node bench/idempotency-index.mjs`. A cost that grows with the inserts means eviction walks
// the map's deleted entries (docs/BENCHMARKS.md, "Sustained load").
import { IdempotencyIndex } from '../packages/engine/dist/decision/idempotency-index.js';

const cap = 200_000;
const index = new IdempotencyIndex(24 * 60 * 60 * 1000, cap);
const rounds = [];
let inserted = 0;
for (let round = 0; round < 12; round += 1) {
  const began = process.hrtime.bigint();
  for (let step = 0; step < 100_000; step += 1, inserted += 1)
    index.set(`d\u0000t1\u0000evt-${inserted}`, 'answer');
  const ns = Number(process.hrtime.bigint() - began) / 100_000;
  rounds.push({ inserted: inserted, ns_per_insert: Math.round(ns) });
  console.log(
    `after ${inserted.toLocaleString('en')} inserts (${index.size.toLocaleString('en')} held): ${Math.round(ns)} ns per insert`,
  );
}
const full = rounds.filter((round) => round.inserted > cap).map((round) => round.ns_per_insert);
console.log(`full index: ${Math.min(...full)}..${Math.max(...full)} ns per insert`);
