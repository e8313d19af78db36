// Measures bulk list imports end-to-end over HTTP: 1M entries as JSON and as CSV, posted to a
// Vigil node running in its own process on a fresh data dir, then the node's restart time with
// those lists on disk. Build first (`npx tsc -b`).
//
//   node bench/lists-import.mjs                 1,000,000 entries per import
//   node bench/lists-import.mjs --entries=N     another size
//
// Timings are wall-clock from the first byte sent to the answer received, so they include body
// transfer, parsing, value checks, the SQLite writes and the in-memory index. On a busy machine
// wall-clock time mostly measures the other processes; the server's own CPU time for the import
// (from /proc, Linux only) is printed beside it, with the load average.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const entriesArgument = process.argv.find((argument) => argument.startsWith('--entries='));
const count = entriesArgument === undefined ? 1_000_000 : Number(entriesArgument.slice('--entries='.length));
const adminToken = 'bench-admin-token-0123456789';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function startNode(dataDir, port) {
  const startedAt = performance.now();
  const child = spawn(process.execPath, [join(root, 'apps/server/bundle/main.js')], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      VIGIL_DATA_DIR: dataDir,
      VIGIL_ADMIN_TOKEN: adminToken,
      VIGIL_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
  return { child, readyMs: performance.now() - startedAt };
}

async function stopNode(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

function request(port, token, method, path, body, contentType = 'application/json') {
  return fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

/** Distinct IPv4 addresses and, every 50th, a /24 range; a third with a TTL, a tenth with a note. */
function entries(n, salt) {
  const result = new Array(n);
  for (let index = 0; index < n; index++) {
    const address = (0x0b000000 + index * 7 + salt) >>> 0;
    const text = `${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255}`;
    const entry = { value: index % 50 === 0 ? `${text.slice(0, text.lastIndexOf('.'))}.0/24` : text };
    if (index % 3 === 0) entry.ttl_seconds = 86_400;
    if (index % 10 === 0) entry.note = `imported ${index}`;
    result[index] = entry;
  }
  return result;
}

/** CPU seconds (user + system) a process has used so far; NaN where /proc is not available. */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function timedImport(port, path, body, contentType) {
  const cpuBefore = cpuSeconds(node.pid);
  const startedAt = performance.now();
  const response = await request(port, adminToken, 'POST', path, body, contentType);
  const result = await response.json();
  const seconds = (performance.now() - startedAt) / 1000;
  const cpu = cpuSeconds(node.pid) - cpuBefore;
  if (response.status !== 200) throw new Error(`import failed: ${response.status} ${JSON.stringify(result)}`);
  return { seconds, cpu, added: result.added, updated: result.updated, rejected: result.rejected.length };
}

const dataDir = mkdtempSync(join(tmpdir(), 'vigil-lists-bench-'));
const port = await freePort();
let node;
try {
  node = (await startNode(dataDir, port)).child;
  const tenant = await (
    await request(port, adminToken, 'POST', '/v1/admin/tenants', { name: 'bench' })
  ).json();
  const base = `/v1/admin/tenants/${tenant.id}/lists`;
  for (const name of ['json_ips', 'csv_ips']) {
    const created = await request(port, adminToken, 'PUT', `${base}/${name}`, { kind: 'block', type: 'ip' });
    if (created.status !== 201) throw new Error(`list: ${created.status} ${await created.text()}`);
  }

  const jsonBody = JSON.stringify(entries(count, 1));
  const json = await timedImport(port, `${base}/json_ips/entries`, jsonBody, 'application/json');
  const csvBody = `value,ttl_seconds,note\n${entries(count, 3)
    .map((entry) => `${entry.value},${entry.ttl_seconds ?? ''},${entry.note ?? ''}`)
    .join('\n')}\n`;
  const csv = await timedImport(port, `${base}/csv_ips/entries`, csvBody, 'text/csv');
  const again = await timedImport(port, `${base}/json_ips/entries`, jsonBody, 'application/json');

  await stopNode(node);
  const restarted = await startNode(dataDir, port);
  node = restarted.child;

  const mb = (text) => (Buffer.byteLength(text) / 1024 / 1024).toFixed(1);
  console.log(
    `lists import, ${count.toLocaleString('en')} entries per import (${process.platform}, node ${process.version})`,
  );
  const times = (run) => `${run.seconds.toFixed(2)} s wall, ${run.cpu.toFixed(2)} s server CPU`;
  console.log(
    `  load average ${loadavg()
      .map((load) => load.toFixed(1))
      .join(' ')}`,
  );
  console.log(`  JSON  ${mb(jsonBody)} MiB: ${times(json)}, added ${json.added}, rejected ${json.rejected}`);
  console.log(`  CSV   ${mb(csvBody)} MiB: ${times(csv)}, added ${csv.added}, rejected ${csv.rejected}`);
  console.log(`  JSON again (all updates): ${times(again)}, updated ${again.updated}`);
  console.log(
    `  restart with ${2 * count} entries on disk, ready in ${(restarted.readyMs / 1000).toFixed(2)} s`,
  );
} finally {
  if (node !== undefined) await stopNode(node);
  rmSync(dataDir, { recursive: true, force: true });
}
