import { createTwoFilesPatch } from 'diff';
import { type ApiError, errorOf, type ManageClient } from './api-client.js';
import type { ConfigFile } from './config-file.js';

/** What `diff` and `apply` found for one item of the file. */
export interface Change {
  kind: 'event_type' | 'policy';
  name: string;
  status: 'unchanged' | 'new' | 'changed';
  patch: string;
}

const canonical = (value: unknown): string => JSON.stringify(sortKeys(value), null, 2);

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
  );
}

const policyKeys = ['strategy', 'thresholds', 'on_missing', 'description', 'rules'];
const eventTypeKeys = ['fields', 'description'];

function pick(source: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((key) => source[key] !== undefined).map((key) => [key, source[key]]));
}

/** The server fills in defaults; compare with them filled in on both sides. */
const policyDefaults = { strategy: 'worst', on_missing: 'not_hit' };

function policyOf(source: Record<string, unknown>): Record<string, unknown> {
  return { ...policyDefaults, ...pick(source, policyKeys) };
}

function change(kind: Change['kind'], name: string, server: unknown, file: unknown): Change {
  const before = server === undefined ? '' : `${canonical(server)}\n`;
  const after = `${canonical(file)}\n`;
  const status = server === undefined ? 'new' : before === after ? 'unchanged' : 'changed';
  return {
    kind,
    name,
    status,
    patch: status === 'unchanged' ? '' : createTwoFilesPatch(`server/${name}`, `file/${name}`, before, after),
  };
}

/** Compares the file with what the server has: event types, and each policy's newest version. */
export async function diffConfig(client: ManageClient, file: ConfigFile): Promise<Change[]> {
  const changes: Change[] = [];
  for (const [name, body] of file.eventTypes) {
    const server = await client.request('GET', `/event-types/${encodeURIComponent(name)}`);
    changes.push(
      change(
        'event_type',
        name,
        server.status === 200 ? pick(server.json, eventTypeKeys) : undefined,
        pick(body, eventTypeKeys),
      ),
    );
  }
  for (const [name, policy] of file.policies) {
    const latest = await latestVersion(client, name);
    changes.push(
      change('policy', name, latest === undefined ? undefined : policyOf(latest), policyOf(policy.body)),
    );
  }
  return changes;
}

async function latestVersion(
  client: ManageClient,
  eventType: string,
): Promise<Record<string, unknown> | undefined> {
  const response = await client.request('GET', `/policies/${encodeURIComponent(eventType)}/versions`);
  if (response.status !== 200) return undefined;
  const versions = response.json.versions as Record<string, unknown>[];
  return versions.at(-1);
}

export interface ApplyResult {
  changes: Change[];
  actions: string[];
  errors: string[];
}

/** Applies the file: event types first, then a new version per changed policy, published as the file says. */
export async function applyConfig(client: ManageClient, file: ConfigFile): Promise<ApplyResult> {
  const changes = await diffConfig(client, file);
  const actions: string[] = [];
  const errors: string[] = [];
  for (const item of changes.filter((c) => c.kind === 'event_type' && c.status !== 'unchanged')) {
    const response = await client.request(
      'PUT',
      `/event-types/${encodeURIComponent(item.name)}`,
      file.eventTypes.get(item.name),
    );
    if (response.status >= 300)
      errors.push(...describe(file, 'event_type', item.name, errorOf(response.json)));
    else actions.push(`event type ${item.name}: ${item.status === 'new' ? 'created' : 'updated'}`);
  }
  if (errors.length > 0) return { changes, actions, errors };
  for (const item of changes.filter((c) => c.kind === 'policy')) {
    const policy = file.policies.get(item.name);
    if (policy === undefined) continue;
    let version: number;
    if (item.status === 'unchanged') {
      version = (await latestVersion(client, item.name))?.version as number;
    } else {
      const created = await client.request(
        'POST',
        `/policies/${encodeURIComponent(item.name)}/versions`,
        policyOf(policy.body),
      );
      if (created.status !== 201) {
        errors.push(...describe(file, 'policy', item.name, errorOf(created.json)));
        continue;
      }
      version = created.json.version as number;
      actions.push(`policy ${item.name}: saved version ${version}`);
    }
    if (policy.publish === false) continue;
    const state = await client.request('GET', `/policies/${encodeURIComponent(item.name)}`);
    const canary = typeof policy.publish === 'number' && policy.publish < 100 ? policy.publish : undefined;
    const current =
      canary === undefined
        ? state.json.published
        : (state.json.canary as { version: number } | null)?.version;
    if (current === version) continue;
    const published = await client.request(
      'POST',
      `/policies/${encodeURIComponent(item.name)}/versions/${version}/publish`,
      canary === undefined ? {} : { canary_percent: canary },
    );
    if (published.status !== 200)
      errors.push(...describe(file, 'policy', item.name, errorOf(published.json)));
    else
      actions.push(
        `policy ${item.name}: published version ${version}${canary === undefined ? '' : ` as a ${canary}% canary`}`,
      );
  }
  return { changes, actions, errors };
}

/** One line per problem: `file:line:column: policy login, rule brute-force: message`. */
function describe(file: ConfigFile, kind: Change['kind'], name: string, error: ApiError): string[] {
  if (error.details === undefined || error.details.length === 0)
    return [`${file.path}: ${kind} ${name}: ${error.message}`];
  return error.details.map((detail) => {
    if (detail.rule !== undefined && detail.line !== undefined && detail.column !== undefined) {
      const place = file.whereIs(name, detail.rule, detail.line, detail.column);
      const at = place === undefined ? '' : `${place.line}:${place.column}:`;
      return `${file.path}:${at} policy ${name}, rule ${detail.rule} (line ${detail.line}, column ${detail.column} of its condition): ${detail.message}`;
    }
    return `${file.path}: ${kind} ${name}: ${detail.path} ${detail.message}`;
  });
}
