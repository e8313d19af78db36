// Measures load time, retained memory and per-call cost of the enrichment functions.
// Run after a build: `npm run bench -w @vigil/enrichment` (or `node --expose-gc bench/measure.mjs`).
// Prints numbers only; nothing here is asserted (see docs/adr/0004-enrichment-data.md for a run).
import { performance } from 'node:perf_hooks';

const collect = () => globalThis.gc?.();
const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

collect();
const before = process.memoryUsage();
let started = performance.now();
const enrichment = await import('../dist/index.js');
const importMs = performance.now() - started;

started = performance.now();
const database = enrichment.IpDatabase.load();
const loadMs = performance.now() - started;
const services = enrichment.createEnrichment({ ipDatabase: database });
services.isDisposableEmail('warm@up.example');
collect();
const after = process.memoryUsage();

console.log(`import of @vigil/enrichment: ${importMs.toFixed(0)} ms`);
console.log(`IpDatabase.load(): ${loadMs.toFixed(0)} ms for ${database.rangeCount} ranges`);
console.log(
  `retained after GC${globalThis.gc ? '' : ' (run with --expose-gc for exact numbers)'}: ` +
    `heap +${megabytes(after.heapUsed - before.heapUsed)}, ` +
    `array buffers +${megabytes(after.arrayBuffers - before.arrayBuffers)}, rss +${megabytes(after.rss - before.rss)}`,
);

function randomIpv4() {
  return `${1 + Math.floor(Math.random() * 222)}.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 256)}`;
}
function randomIpv6() {
  const group = () => Math.floor(Math.random() * 0x10000).toString(16);
  return `2${Math.floor(Math.random() * 0x1000)
    .toString(16)
    .padStart(3, '0')}:${group()}:${group()}::${group()}`;
}

function measure(name, inputs, call, rounds = 5) {
  for (const input of inputs) call(input);
  let answered = 0;
  const started = performance.now();
  for (let round = 0; round < rounds; round++) {
    for (const input of inputs) if (call(input) !== undefined) answered++;
  }
  const calls = rounds * inputs.length;
  const nanoseconds = ((performance.now() - started) * 1e6) / calls;
  console.log(
    `${name}: ${(nanoseconds / 1000).toFixed(2)} µs per call (${calls} calls, ${answered} answered)`,
  );
}

const ipv4 = Array.from({ length: 100_000 }, randomIpv4);
const ipv6 = Array.from({ length: 100_000 }, randomIpv6);
const emails = Array.from({ length: 100_000 }, (_, index) =>
  index % 2 === 0 ? `user${index}@sub${index % 7}.example${index % 1000}.com` : `user${index}@mailinator.com`,
);
const phones = Array.from({ length: 20_000 }, (_, index) =>
  index % 2 === 0
    ? `+1415555${String(index % 10_000).padStart(4, '0')}`
    : `+4915123${String(index).padStart(6, '0')}`,
);
const userAgents = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
];
const distinctUserAgents = Array.from(
  { length: 20_000 },
  (_, index) => `${userAgents[index % 3]} build/${index}`,
);
const repeatedUserAgents = Array.from({ length: 100_000 }, (_, index) => userAgents[index % 3]);

measure('ipInfo IPv4 (random public)', ipv4, services.ipInfo);
measure('ipInfo IPv6 (random 2000::/4)', ipv6, services.ipInfo);
measure('isDisposableEmail', emails, services.isDisposableEmail);
measure('phoneCountry', phones, services.phoneCountry, 2);
measure('userAgent (cache hit)', repeatedUserAgents, services.userAgent);
const uncached = enrichment.createUserAgentParser({ cacheSize: 1 });
measure('userAgent (cache miss, parse)', distinctUserAgents, uncached, 1);
