import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type NodeProcess, startProcess } from '../../server/test/process-harness.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const adminToken = 'cli-test-admin-token-0123456789';

let dir: string;
let server: NodeProcess;
let apiKey: string;

async function vigil(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], {
      env: { ...process.env, VIGIL_URL: server.url, VIGIL_API_KEY: apiKey },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

const policyFile = (when: string) => `# Vigil configuration for the login flow
event_types:
  login:
    fields:
      account_id: { type: string, required: true }
      ip: { type: ip }
      failed_attempts: { type: integer }
policies:
  login:
    strategy: worst
    rules:
      - id: many-failures
        name: Many failed attempts
        when: ${when}
        verdict: reject
        reason: brute force
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vigil-cli-'));
  server = await startProcess({ VIGIL_DATA_DIR: join(dir, 'data'), VIGIL_ADMIN_TOKEN: adminToken });
  const tenant = await call(server.url, adminToken, 'POST', '/v1/admin/tenants', { name: 'cli' });
  const key = await call(server.url, adminToken, 'POST', `/v1/admin/tenants/${tenant.json.id}/keys`, {
    scopes: ['manage', 'decide'],
  });
  apiKey = key.json.api_key as string;
});
afterAll(() => {
  server.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('vigil apply and diff', () => {
  it('diffs, applies, publishes, and then finds nothing to change', async () => {
    const file = join(dir, 'login.yaml');
    writeFileSync(file, policyFile('event.failed_attempts >= 5'));
    const before = await vigil('diff', '-f', file);
    expect(before.code).toBe(3);
    expect(before.stdout).toContain('event_type login: new');
    expect(before.stdout).toContain('policy login: new');

    const applied = await vigil('apply', '-f', file);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('event type login: created');
    expect(applied.stdout).toContain('policy login: published version 1');

    const decision = await call(server.url, apiKey, 'POST', '/v1/decisions', {
      type: 'login',
      id: 'l-1',
      fields: { account_id: 'u', failed_attempts: 7 },
    });
    expect(decision.json).toMatchObject({ verdict: 'reject', policy_version: 1 });

    const after = await vigil('diff', '-f', file);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain('policy login: unchanged');
    expect((await vigil('apply', '-f', file)).stdout).toContain('nothing to change');
  });

  it('shows a changed rule as a diff and applies it as a new version', async () => {
    const file = join(dir, 'login.yaml');
    writeFileSync(file, policyFile('event.failed_attempts >= 3'));
    const diff = await vigil('diff', '-f', file);
    expect(diff.stdout).toContain('-      "when": "event.failed_attempts >= 5"');
    expect(diff.stdout).toContain('+      "when": "event.failed_attempts >= 3"');
    expect((await vigil('apply', '-f', file)).stdout).toContain('published version 2');
  });

  it('reports compile errors with file, rule, line and column', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, policyFile('event.failed_attempts >= "five"'));
    const result = await vigil('apply', '-f', file);
    expect(result.code).toBe(1);
    // The rule's condition starts on line 14, column 15 of the file; the error is at its column 23.
    expect(result.stderr).toContain(`${file}:14:37: policy login, rule many-failures`);
    expect(result.stderr).toContain('no matching overload');
  });

  it('refuses a file it cannot read as configuration', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'rules: [unclosed');
    const result = await vigil('apply', '-f', file);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(file);
  });
});

describe('vigil feature', () => {
  it('follows a backfill over stored events until the feature is ready', async () => {
    const schema = { fields: { account_id: { type: 'string', required: true }, ip: { type: 'ip' } } };
    expect((await call(server.url, apiKey, 'PUT', '/v1/manage/event-types/signin', schema)).status).toBe(201);
    for (let batch = 0; batch < 3; batch++) {
      const events = Array.from({ length: 1000 }, (_, index) => ({
        type: 'signin',
        id: `bf-${batch}-${index}`,
        fields: { account_id: `u-${index % 50}`, ip: '192.0.2.1' },
      }));
      expect((await call(server.url, apiKey, 'POST', '/v1/events', { events })).status).toBe(202);
    }
    const feature = { aggregation: 'count', by: ['account_id'], window: '1h', event_types: ['signin'] };
    expect((await call(server.url, apiKey, 'PUT', '/v1/manage/features/signins_1h', feature)).status).toBe(
      201,
    );
    const waited = await vigil('feature', 'signins_1h', '--wait');
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stdout.trim().split('\n').at(-1)).toBe('signins_1h: ready');
    for (const line of waited.stdout.trim().split('\n').slice(0, -1))
      expect(line).toMatch(/^signins_1h: backfilling \[[#.]{30}\] \d+\.\d% \(\d+ events\)$/);
  });

  it('fails with the API error for an unknown feature', async () => {
    const missing = await vigil('feature', 'no_such_feature');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('not_found');
  });
});
