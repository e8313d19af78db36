import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A PostgreSQL server of a test's own (`initdb` and `postgres` from PATH), in a temporary
 * directory on a free port, so the test can stop, freeze and restart it. Started as the
 * `postgres` user when the tests run as root, since PostgreSQL refuses to run as root.
 */
export class PostgresProcess {
  readonly url: string;
  readonly #directory: string;
  readonly #port: number;
  readonly #owner: { uid: number; gid: number } | undefined;
  readonly #settings: readonly string[];
  #child: ChildProcess | undefined;

  private constructor(
    directory: string,
    port: number,
    owner: { uid: number; gid: number } | undefined,
    settings: readonly string[],
  ) {
    this.#directory = directory;
    this.#port = port;
    this.#owner = owner;
    this.#settings = settings;
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /**
   * `settings`: more `name=value` server settings (`-c`), e.g. `shared_preload_libraries=pg_stat_statements`
   * for a benchmark's diagnosis.
   */
  static async start(options: { settings?: readonly string[] } = {}): Promise<PostgresProcess> {
    const directory = mkdtempSync(join(tmpdir(), 'vigil-pg-'));
    const owner = process.getuid?.() === 0 ? postgresUser() : undefined;
    if (owner !== undefined) chownSync(directory, owner.uid, owner.gid);
    execFileSync(
      'initdb',
      [
        '-D',
        join(directory, 'data'),
        '-U',
        'postgres',
        '--auth=trust',
        '-E',
        'UTF8',
        '--no-sync',
        '--no-locale',
      ],
      { stdio: 'pipe', ...owner },
    );
    const server = new PostgresProcess(directory, await freePort(), owner, options.settings ?? []);
    try {
      await server.resume();
    } catch (error) {
      // A server that did not come up (e.g. a bad setting) leaves neither a process nor its directory.
      await server.destroy();
      throw error;
    }
    return server;
  }

  /** The server process's id while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the server on its data directory (again) and waits until it takes connections. */
  async resume(): Promise<void> {
    const child = spawn(
      'postgres',
      [
        '-D',
        join(this.#directory, 'data'),
        '-p',
        String(this.#port),
        '-k',
        this.#directory,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
        ...this.#settings.flatMap((setting) => ['-c', setting]),
      ],
      { stdio: 'ignore', ...this.#owner },
    );
    this.#child = child;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`postgres exited with code ${child.exitCode}`);
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.end();
        return;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Shuts the server down (fast shutdown: connections are closed) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      this.#child = undefined;
      return;
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // A frozen server must be thawed to shut down (signalled while `#child` still names it).
    this.#signalGroup('SIGCONT');
    this.#child = undefined;
    child.kill('SIGINT');
    await exited;
  }

  /**
   * Freezes the server and its backends (SIGSTOP to each, by id): connections stay open and
   * nothing answers, like a network partition.
   */
  freeze(): void {
    this.#signalGroup('SIGSTOP');
  }

  thaw(): void {
    this.#signalGroup('SIGCONT');
  }

  /** Signals the postmaster and its children (each backend runs in a session of its own). */
  #signalGroup(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)])
      .toString()
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((child) => Number.isInteger(child) && child > 0);
    for (const target of [pid, ...children]) {
      try {
        process.kill(target, signal);
      } catch {
        // A backend that exited meanwhile.
      }
    }
  }

  /** Stops the server and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.#directory, { recursive: true, force: true });
  }
}

function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
