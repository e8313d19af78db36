import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The shared PostgreSQL that tests create their own databases in (`VIGIL_TEST_DATABASE_URL`). */
export const testServerUrl = process.env.VIGIL_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A database of one test file's own, and how to drop it (only it: nothing else is touched). */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * Creates an empty database `vigil_test_<random>` next to `serverUrl`'s, so parallel test files
 * share nothing, notification channels included (they are per database).
 */
export async function createTestDatabase(serverUrl = testServerUrl): Promise<TestDatabase> {
  const name = `vigil_test_${randomBytes(6).toString('hex')}`;
  await withClient(serverUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      await withClient(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** A fresh schema name, for a test that needs empty tables within its file's database. */
export function randomSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

/** Creates `schema` in the database at `url`. */
export async function createSchema(url: string, schema: string): Promise<void> {
  await withClient(url, (client) => client.query(`CREATE SCHEMA ${schema}`));
}

export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
