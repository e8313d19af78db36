// The SQLite decision log's event filter (a Bloom filter of the last day's event ids): false
// positives and ns per lookup of a new id after N ids in a day, each false positive being an index
// lookup in SQLite on the main thread. A simulated clock spreads the ids over 24 h, so the filter
// cuts its time slices as it would at that daily volume. Run after a build:
// `node bench/event-filter.mjs` (about a minute).
import { EventFilter } from '../packages/store-sqlite/dist/event-filter.js';

const day = 24 * 60 * 60 * 1000;
const probes = 200_000;
for (const perDay of [1_000_000, 5_000_000, 20_000_000, 50_000_000]) {
  let now = 0;
  const filter = new EventFilter({ horizon: day + 60 * 60 * 1000, now: () => now });
  const spacing = day / perDay;
  // A day and a half, so that the second day's slices are sized from the first day's.
  const total = Math.floor(perDay * 1.5);
  for (let index = 0; index < total; index += 1) {
    now = index * spacing;
    filter.add(`tenant-1\u0000evt-${index}\u0000decision`);
  }
  let positives = 0;
  const began = process.hrtime.bigint();
  for (let index = 0; index < probes; index += 1)
    if (filter.mightContain(`tenant-1\u0000new-${index}\u0000decision`)) positives += 1;
  const ns = Number(process.hrtime.bigint() - began) / probes;
  const { generations, bytes } = filter.size;
  console.log(
    `${perDay.toLocaleString('en')} ids a day: ${((100 * positives) / probes).toFixed(3)}% false positives, ` +
      `${Math.round(ns)} ns per lookup, ${generations} generations, ${(bytes / 2 ** 20).toFixed(1)} MiB`,
  );
}
