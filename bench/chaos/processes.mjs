// Child processes of `npm run chaos`: Vigil nodes and the load generator. Every child is tracked
// and stopped by its own PID when the run ends, fails or is interrupted; temporary directories are
// removed. Nothing else is ever signalled.
import { execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const mainScript = join(root, 'apps/server/bundle/main.js');
const generatorScript = fileURLToPath(new URL('./load-generator.mjs', import.meta.url));

const children = new Set();
const tempDirs = new Set();

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILLs every child still running (by PID) and removes the temporary directories. */
export function killEverything() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

let handlersInstalled = false;
export function installExitHandlers(label) {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killEverything);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      process.stderr.write(`\n${label}: ${signal}, stopping every child process\n`);
      process.exit(130);
    });
  }
}

export function makeTempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export const randomToken = () => randomBytes(16).toString('hex');

// ---------------------------------------------------------------------------------------------
// Vigil nodes

/**
 * With `VIGIL_CHAOS_PIN=1` (Linux, `taskset`), nodes run on CPU 1 and the load generator on CPU 0,
 * so that the generator's work does not come out of the node's capacity: an overload drill then
 * measures the node, not two processes fighting over two cores.
 */
function pin(pid, cpu) {
  if (process.env.VIGIL_CHAOS_PIN !== '1' || pid === undefined) return;
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

/**
 * Starts `apps/server/bundle/main.js` (what `npm start` runs) on `port` with `dataDir`; resolves once `/readyz` answers 200.
 * `extraEnv` comes last, so `--env=NAME=value` options can set any node setting.
 */
export async function startNode({ port, dataDir, adminToken, extraEnv = {}, readyLimitMs = 60_000 }) {
  const spawnedAt = Date.now();
  const child = track(
    spawn(process.execPath, [mainScript], {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        VIGIL_DATA_DIR: dataDir,
        VIGIL_ADMIN_TOKEN: adminToken,
        VIGIL_LOG_LEVEL: 'warn',
        VIGIL_IP_DATA: 'off',
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  pin(child.pid, 1);
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-16_384);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const node = { child, port, dataDir, adminToken, exited, output: () => output, spawnedAt, readyAt: 0 };
  let gone = false;
  exited.then(() => {
    gone = true;
  });
  while (Date.now() - spawnedAt < readyLimitMs) {
    if (gone) throw new Error(`the node exited before it was ready:\n${output}`);
    if ((await getStatus(port, '/readyz')) === 200) {
      node.readyAt = Date.now();
      return node;
    }
    await sleep(10);
  }
  child.kill('SIGKILL');
  throw new Error(`the node was not ready within ${readyLimitMs} ms:\n${output}`);
}

/** SIGTERM (drain and flush), SIGKILL after `limitMs`. Resolves { clean } once the process is gone. */
export async function stopNode(node, limitMs = 15_000) {
  if (node.child.exitCode !== null || node.child.signalCode !== null) {
    const { code } = await node.exited;
    return { clean: code === 0 };
  }
  node.child.kill('SIGTERM');
  const stopped = await Promise.race([node.exited, sleep(limitMs, 'timeout')]);
  if (stopped === 'timeout') {
    node.child.kill('SIGKILL');
    await node.exited;
    return { clean: false };
  }
  return { clean: stopped.code === 0 };
}

/** SIGKILL, as a crash: no drain, no flush. */
export async function killNode(node) {
  node.child.kill('SIGKILL');
  await node.exited;
}

/** Status of `GET path`, or 0 when nothing answers. */
export function getStatus(port, path) {
  return new Promise((resolve) => {
    const request = httpGet({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('error', () => resolve(0));
    request.on('timeout', () => request.destroy());
  });
}

/** One control-plane call; never throws for an HTTP status, only for a network failure. */
export async function api(port, method, path, token, body) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: response.status, headers: response.headers, body: json };
}

/** Like `api`, but a status other than 2xx is an error. */
export async function apiOk(port, method, path, token, body) {
  const result = await api(port, method, path, token, body);
  if (result.status < 200 || result.status > 299) {
    throw new Error(`${method} ${path}: ${result.status} ${JSON.stringify(result.body)}`);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The load generator

/** Forks bench/chaos/load-generator.mjs and waits until it is listening for its plan. */
export async function startGenerator() {
  const child = track(
    fork(generatorScript, [], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  pin(child.pid, 0);
  await new Promise((resolve, reject) => {
    child.once('message', (message) =>
      message?.type === 'ready' ? resolve() : reject(new Error('generator')),
    );
    child.once('exit', (code) =>
      reject(new Error(`the load generator exited (${code}) before it was ready`)),
    );
  });
  return child;
}

/** Runs one plan in the generator; resolves with its result. */
export function runPlan(generator, plan) {
  return new Promise((resolve, reject) => {
    const onExit = (code, signal) => reject(new Error(`the load generator exited (${code ?? signal})`));
    generator.once('exit', onExit);
    generator.once('message', (message) => {
      generator.off('exit', onExit);
      if (message?.type === 'done') resolve(message.result);
      else reject(new Error(`the load generator failed: ${message?.message}`));
    });
    generator.send({ type: 'run', plan });
  });
}

export function stopGenerator(generator) {
  if (generator.exitCode !== null || generator.signalCode !== null) return Promise.resolve();
  const exited = new Promise((resolve) => generator.once('exit', resolve));
  generator.disconnect();
  return Promise.race([exited, sleep(5000).then(() => generator.kill('SIGKILL'))]);
}
