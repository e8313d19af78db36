// A private Redis and a private PostgreSQL for `npm run bench` (the distributed scenario) and
// `npm run chaos` (the multi-node drills), with the stores' own test helpers: a `redis-server`
// and a `postgres` (initdb in a temporary directory, fsync off), each on a free port and stopped
// by its PID. The shared servers of the machine are never touched, so a drill may kill, stop and
// restart these at will.
//
// Diagnosis (issue 6), off by default:
//   VIGIL_BENCH_BACKEND_CPU=1      on stop, print the CPU time the private PostgreSQL (postmaster
//                                  and backends) and Redis used since start, per decision row
//   VIGIL_BENCH_PG_STATEMENTS=1    load pg_stat_statements and, on stop, print the statements
//                                  that took the most PostgreSQL time
//   VIGIL_BENCH_PG_SETTINGS='a=1 b=2'  more PostgreSQL server settings, space-separated
//
// The helpers are the compiled ones (`npx tsc -b` builds them; `npm run bench` and `npm run chaos`
// build first).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

async function helpers() {
  const [{ RedisProcess }, { PostgresProcess }] = await Promise.all([
    import(`${root}packages/store-redis/dist/testing/redis-processes.js`),
    import(`${root}packages/store-postgres/dist/test-support/postgres-process.js`),
  ]);
  return { RedisProcess, PostgresProcess };
}

/** Servers started here and still running: stopped by PID if the process exits early. */
const running = new Set();

function stopAllNow() {
  for (const server of running) {
    const pid = server.pid;
    if (pid === undefined) continue;
    try {
      // Redis: SIGKILL. PostgreSQL: SIGQUIT is its immediate shutdown (backends exit with it).
      process.kill(pid, server.kind === 'postgres' ? 'SIGQUIT' : 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  running.clear();
}
process.on('exit', stopAllNow);

/**
 * Starts a private Redis and a private PostgreSQL, side by side. Returns
 * `{ redis, postgres, redisUrl, databaseUrl, stop() }`; `redis` has `kill()`, `restart()`,
 * `pause()`, `resume()`; `postgres` has `stop()` and `resume()` (start again on the same data).
 */
export async function startBackends() {
  const { RedisProcess, PostgresProcess } = await helpers();
  const statements = process.env.VIGIL_BENCH_PG_STATEMENTS === '1';
  const started = await Promise.allSettled([
    RedisProcess.start(),
    PostgresProcess.start({ settings: postgresSettings(statements) }),
  ]);
  const failed = started.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    // Not one without the other: stop the one that did start, or it would outlive the run.
    const [redisStarted, postgresStarted] = started;
    if (redisStarted.status === 'fulfilled') await redisStarted.value.stop().catch(() => undefined);
    if (postgresStarted.status === 'fulfilled') await postgresStarted.value.destroy().catch(() => undefined);
    throw failed.reason;
  }
  const [redis, postgres] = started.map((result) => result.value);
  const databaseUrl = postgres.url;
  if (statements) await pgQuery(databaseUrl, 'CREATE EXTENSION pg_stat_statements');
  const measureCpu = process.env.VIGIL_BENCH_BACKEND_CPU === '1';
  const cpuAtStart = measureCpu
    ? { postgres: postgresCpuMs(postgres.pid), redis: cpuMs(redis.pid) }
    : undefined;
  const handles = [
    {
      kind: 'redis',
      get pid() {
        return redis.pid;
      },
    },
    {
      kind: 'postgres',
      get pid() {
        return postgres.pid;
      },
    },
  ];
  for (const handle of handles) running.add(handle);
  return {
    redis,
    postgres,
    redisUrl: redis.url,
    databaseUrl: postgres.url,
    async stop() {
      if (cpuAtStart !== undefined) {
        await reportCpu(databaseUrl, postgres.pid, redis.pid, cpuAtStart);
        reportRedisCommands(redis.port);
      }
      if (statements) await reportStatements(databaseUrl);
      for (const handle of handles) running.delete(handle);
      await Promise.allSettled([redis.stop(), postgres.destroy()]);
    },
  };
}

/** Server settings for the diagnosis switches above. */
function postgresSettings(statements) {
  const extra = (process.env.VIGIL_BENCH_PG_SETTINGS ?? '').split(/\s+/).filter((setting) => setting !== '');
  return statements && !extra.some((setting) => setting.startsWith('shared_preload_libraries='))
    ? ['shared_preload_libraries=pg_stat_statements', ...extra]
    : extra;
}

/** A pg client on `url` (the `pg` module of the PostgreSQL store), for checks after a run. */
export async function pgQuery(url, text, values = []) {
  const { default: pg } = await import(`${root}node_modules/pg/lib/index.js`);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// Diagnosis: CPU of the private servers, and PostgreSQL's costliest statements

const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process in ms (with `children`, also cutime + cstime: its reaped children's). */
function cpuMs(pid, children = false) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks =
      Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0);
    return (ticks * 1000) / clockTicks;
  } catch {
    return 0;
  }
}

/** The postmaster's CPU with its reaped children's, plus that of each running backend. */
function postgresCpuMs(pid) {
  if (pid === undefined) return 0;
  const backends = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)])
    .toString()
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((child) => Number.isInteger(child) && child > 0);
  return backends.reduce((total, backend) => total + cpuMs(backend), cpuMs(pid, true));
}

async function reportCpu(databaseUrl, postgresPid, redisPid, atStart) {
  const postgresMs = postgresCpuMs(postgresPid) - atStart.postgres;
  const redisMs = cpuMs(redisPid) - atStart.redis;
  let decisions = Number.NaN;
  try {
    const { rows } = await pgQuery(databaseUrl, 'SELECT count(*)::int AS n FROM decisions');
    decisions = rows[0].n;
  } catch {
    // PostgreSQL is down (a drill): CPU totals only.
  }
  const perDecision = (ms) => ((ms * 1000) / decisions).toFixed(1);
  console.log(
    `  backends CPU since start: PostgreSQL ${postgresMs.toFixed(0)} ms, Redis ${redisMs.toFixed(0)} ms; ${decisions} decision rows; per row: PostgreSQL ${perDecision(postgresMs)} µs, Redis ${perDecision(redisMs)} µs`,
  );
}

/** Redis's costliest commands since start (`INFO commandstats`, with `redis-cli`). */
function reportRedisCommands(port) {
  try {
    const info = execFileSync('redis-cli', ['-p', String(port), 'INFO', 'commandstats']).toString();
    const commands = [...info.matchAll(/^cmdstat_(\S+):calls=(\d+),usec=(\d+)/gm)]
      .map(([, name, calls, usec]) => ({ name, calls: Number(calls), usec: Number(usec) }))
      .sort((a, b) => b.usec - a.usec)
      .slice(0, 8);
    console.log(
      `  Redis commands (top by time): ${commands.map((c) => `${c.name} ${c.calls} calls ${Math.round(c.usec / 1000)} ms`).join('; ')}`,
    );
  } catch (error) {
    console.log(`  Redis commandstats: ${error.message}`);
  }
}

async function reportStatements(databaseUrl) {
  try {
    const { rows } = await pgQuery(
      databaseUrl,
      `SELECT calls, rows, round(total_exec_time)::int AS exec_ms, round(total_plan_time)::int AS plan_ms,
              left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
         FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 12`,
    );
    console.log('  pg_stat_statements (top by time):');
    for (const row of rows)
      console.log(
        `    ${row.exec_ms} ms exec + ${row.plan_ms} ms plan, ${row.calls} calls, ${row.rows} rows: ${row.query}`,
      );
  } catch (error) {
    console.log(`  pg_stat_statements: ${error.message}`);
  }
}
