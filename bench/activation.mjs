// What building the rules' view of an event costs: a spread of the parsed fields against
// `Object.assign` onto a fresh literal (what `activationOf` in packages/engine/src/policy/
// policy-stage.ts does), on the reference events parsed from JSON as the server gets them.
//
//   node bench/activation.mjs
//
// Prints ns per event for each way, the median of 5 rounds of 200,000 events. See ADR 0006 and
// docs/BENCHMARKS.md ("Building the activation").
import { generateEvents } from './reference-policy.mjs';

const events = generateEvents(2000).map((event) =>
  JSON.parse(JSON.stringify({ type: 'payment', id: event.id ?? 'evt', fields: event.fields ?? event })),
);
const timestamp = '2026-11-25T00:00:00.000Z';

const ways = {
  spread: (body) => {
    const event = { ...body.fields };
    event.type = body.type;
    event.id = body.id;
    event.timestamp = timestamp;
    return event;
  },
  'Object.assign': (body) => {
    const event = Object.assign({}, body.fields);
    event.type = body.type;
    event.id = body.id;
    event.timestamp = timestamp;
    return event;
  },
};

const rounds = 5;
const perRound = 200_000;
let sink = 0;
for (const [name, build] of Object.entries(ways)) {
  const times = [];
  for (let round = 0; round < rounds; round++) {
    const started = process.hrtime.bigint();
    for (let index = 0; index < perRound; index++) {
      if (build(events[index % events.length]).amount > 0) sink += 1;
    }
    times.push(Number(process.hrtime.bigint() - started) / perRound);
  }
  times.sort((a, b) => a - b);
  console.log(`${name.padEnd(14)} ${times[Math.floor(rounds / 2)].toFixed(0).padStart(6)} ns per event`);
}
if (sink < 0) console.log(sink);
