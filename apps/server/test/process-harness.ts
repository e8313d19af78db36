import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** What `npm start` runs: the bundle of the built server (`npm run build`, which `npm test` runs first). */
export const mainScript = fileURLToPath(new URL('../bundle/main.js', import.meta.url));
const builtMain = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/**
 * Refuses a bundle older than the server's built entry point: after `tsc -b` alone (or a vitest
 * run of these files without `npm test`), the processes would run an earlier server and pass.
 * It compares with `dist/main.js` only, which `tsc -b` rewrites when the server's code changes;
 * a change only in another package's `dist/` is not caught here.
 */
function assertBundleCurrent(): void {
  const modified = (path: string) => {
    try {
      return statSync(path).mtimeMs;
    } catch {
      return Number.NaN;
    }
  };
  const bundle = modified(mainScript);
  if (!(bundle >= modified(builtMain))) {
    throw new Error(`${mainScript} is missing or older than dist/: run \`npm run build\` (npm test does)`);
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A Vigil node in its own process, as `npm start` runs it. */
export interface NodeProcess {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startProcess(env: Record<string, string>): Promise<NodeProcess> {
  assertBundleCurrent();
  const port = await freePort();
  const child = spawn(process.execPath, [mainScript], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      VIGIL_LOG_LEVEL: 'warn',
      VIGIL_IP_DATA: 'off',
      // Other test files load the machine; lag-based shedding is tested in admission.test.ts.
      VIGIL_SHED_LAG_MS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 200; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`node exited early: ${output}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return { child, url, stdout: () => output, exited };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`node not ready: ${output}`);
}

export async function call(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}
