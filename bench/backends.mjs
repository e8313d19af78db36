// A private Redis and a private PostgreSQL for `npm run bench` (the distributed scenario) and
// `npm run chaos` (the multi-node drills), with the stores' own test helpers: a `redis-server`
// and a `postgres` (initdb in a temporary directory, fsync off), each on a free port and stopped
// by its PID. The shared servers of the machine are never touched, so a drill may kill, stop and
// restart these at will.
//
// The helpers are the compiled ones (`npx tsc -b` builds them; `npm run bench` and `npm run chaos`
// build first).
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
  const [redis, postgres] = await Promise.all([RedisProcess.start(), PostgresProcess.start()]);
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
      for (const handle of handles) running.delete(handle);
      await Promise.allSettled([redis.stop(), postgres.destroy()]);
    },
  };
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
