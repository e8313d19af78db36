import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { literalUnion } from '@vigil/protocol';

/**
 * Every setting of a node. Each is read from an environment variable of the same name, or from a
 * command-line flag `--name=value` in kebab case without the `VIGIL_` prefix (`--data-dir=...`).
 * The README's configuration table is checked against this schema by a test.
 */
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'HTTP port.' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'Address to listen on.' }),
  VIGIL_DATA_DIR: Type.String({
    default: './data',
    description: 'Where the embedded stores keep their files.',
  }),
  VIGIL_ADMIN_TOKEN: Type.Optional(
    Type.String({
      minLength: 16,
      description:
        'Platform operator token. If unset, one is generated on first start into `<data dir>/admin-token` (mode 0600) and printed once.',
    }),
  ),
  VIGIL_MASTER_KEY: Type.Optional(
    Type.String({
      pattern: '^[0-9a-fA-F]{64}$',
      description:
        '32 bytes as hex that seal API-key signing secrets at rest. If unset, one is generated into `<data dir>/master-key` (mode 0600).',
    }),
  ),
  VIGIL_LOG_LEVEL: literalUnion(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
    description: 'pino log level.',
  }),
  VIGIL_BODY_LIMIT_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 16 * 1024 * 1024,
    default: 64 * 1024,
    description: 'Largest body of a single-event request, counted after decompression.',
  }),
  VIGIL_BATCH_BODY_LIMIT_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 256 * 1024 * 1024,
    default: 8 * 1024 * 1024,
    description: 'Largest body of a batch or bulk request, counted after decompression.',
  }),
  VIGIL_IMPORT_BODY_LIMIT_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 1024 * 1024 * 1024,
    default: 128 * 1024 * 1024,
    description: 'Largest body of a list entries import (JSON or CSV), counted after decompression.',
  }),
  VIGIL_MAX_JSON_DEPTH: Type.Integer({
    minimum: 2,
    maximum: 256,
    default: 32,
    description: 'Deepest nesting of objects and arrays accepted in a body.',
  }),
  VIGIL_TENANT_RPS: Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    default: 0,
    description:
      'Rate limit of a tenant without its own `rate_limit`: data-plane requests (a batch counts its events) per second (per node; across all nodes with `VIGIL_REDIS_URL`); `0`: none.',
  }),
  VIGIL_TENANT_BURST: Type.Integer({
    minimum: 0,
    maximum: 10_000_000,
    default: 0,
    description:
      'Token-bucket size of a tenant without its own `rate_limit`; `0`: one second of `VIGIL_TENANT_RPS`.',
  }),
  VIGIL_TENANT_MAX_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 256,
    description:
      'In-flight data-plane requests per node of a tenant without its own `max_concurrency`; more get 429.',
  }),
  VIGIL_CONCURRENCY_LIMIT_MIN: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 64,
    description:
      'Lowest the adaptive node-wide limit of in-flight data-plane requests may fall under rising latency.',
  }),
  VIGIL_CONCURRENCY_LIMIT_MAX: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 1024,
    description:
      'Highest (and starting) adaptive node-wide limit of in-flight data-plane requests; at least `VIGIL_CONCURRENCY_LIMIT_MIN`.',
  }),
  VIGIL_SHED_LAG_MS: Type.Integer({
    minimum: 0,
    maximum: 10_000,
    default: 50,
    description:
      'Event-loop lag at which the node starts shedding new data-plane requests (all of them at twice this lag); 0 turns it off.',
  }),
  VIGIL_DECISION_LOG_SYNC: Type.Union([Type.Literal('normal'), Type.Literal('full')], {
    default: 'normal',
    description:
      '`normal`: a decision is durable against a crash of the process; `full`: also against power loss (fsync per batch).',
  }),
  VIGIL_IP_DATA: literalUnion(['packaged', 'off'], {
    default: 'packaged',
    description:
      '`packaged`: load the IP country/ASN data shipped with the enrichment package in a worker after start; `off`: `ip_info` knows only private addresses.',
  }),
  VIGIL_POLICY_CPU_BUDGET_MS: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description:
      'CPU guard: how long the rules of one policy may run on one event (ms); rules still running are cut off, reported in `errors` and follow `on_missing`.',
  }),
  VIGIL_TENANT_RULE_CPU_MS_PER_S: Type.Integer({
    minimum: 0,
    maximum: 1000,
    default: 200,
    description:
      "Each tenant's share of a node's time for rules, in ms per second (1000: a whole core), holding one second's worth; a tenant over it has its rules cut off after microseconds of work (degraded `policy_cpu`) until it refills. Only evaluations long enough for the CPU guard to time count. `0`: no share.",
  }),
  VIGIL_SHUTDOWN_DELAY_MS: Type.Integer({
    minimum: 0,
    maximum: 60_000,
    default: 0,
    description:
      'On SIGTERM, how long to report not-ready before closing the listener, so a load balancer can move traffic away.',
  }),
  VIGIL_REDIS_URL: Type.Optional(
    Type.String({
      pattern: '^rediss?(\\+cluster)?://',
      'x-unset': '(unset)',
      description:
        'Shared Redis for the counters of several nodes: `redis://host:port/db`, `rediss://` for TLS, `redis+cluster://host:port,host:port` for a cluster. Unset: counters in process (docs/SCALE-OUT.md).',
    }),
  ),
  VIGIL_REDIS_COMMAND_TIMEOUT_MS: Type.Integer({
    minimum: 5,
    maximum: 10_000,
    default: 50,
    description:
      'How long a Redis command may take before it fails and the node counts locally (marked degraded).',
  }),
  VIGIL_DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      'x-unset': '(unset)',
      description:
        'Shared PostgreSQL for the configuration, audit and decision log of several nodes: `postgres://user:password@host:port/database`. Unset: SQLite files in the data dir (docs/SCALE-OUT.md).',
    }),
  ),
  VIGIL_FAULTS: Type.String({
    default: '[]',
    description:
      'Fault injections for drills, started with the node: a JSON array of `POST /v1/admin/faults` bodies (docs/RELIABILITY.md). Invalid JSON stops the start.',
  }),
});

export type Config = Readonly<Static<typeof ConfigSchema>>;

/** Parses the configuration once from the environment and flags; throws with every problem listed. */
export function loadConfig(env: NodeJS.ProcessEnv, argv: readonly string[] = []): Config {
  const raw: Record<string, unknown> = {};
  for (const name of Object.keys(ConfigSchema.properties)) {
    if (env[name] !== undefined && env[name] !== '') raw[name] = env[name];
  }
  for (const argument of argv) {
    const match = /^--([a-z][a-z-]*)=(.*)$/.exec(argument);
    if (match === null) throw new Error(`unrecognised argument: ${argument}`);
    const flag = (match[1] as string).toUpperCase().replaceAll('-', '_');
    const name = flag in ConfigSchema.properties ? flag : `VIGIL_${flag}`;
    if (!(name in ConfigSchema.properties)) throw new Error(`unknown flag: --${match[1]}`);
    raw[name] = match[2];
  }
  const value = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw));
  const errors = [...Value.Errors(ConfigSchema, value)];
  if (errors.length > 0) {
    throw new Error(
      `invalid configuration: ${errors.map((e) => `${e.path.slice(1)} ${e.message}`).join('; ')}`,
    );
  }
  return Object.freeze(value as Static<typeof ConfigSchema>);
}
