// Tenants, policies and faults for `npm run chaos`, all over the node's HTTP API.
import { setTimeout as sleep } from 'node:timers/promises';
import { eventTypeSchema, generateEvents, referencePolicy } from '../reference-policy.mjs';
import { api, apiOk } from './processes.mjs';

/** The four features the reference policy's feature rules read, all keyed by account. */
export const featureDefinitions = {
  txn_count_1h: { aggregation: 'count', by: ['account_id'], window: '1h', event_types: ['payment'] },
  txn_count_24h: { aggregation: 'count', by: ['account_id'], window: '24h', event_types: ['payment'] },
  amount_sum_24h: {
    aggregation: 'sum',
    field: 'amount',
    by: ['account_id'],
    window: '24h',
    event_types: ['payment'],
  },
  distinct_cards_24h: {
    aggregation: 'distinct',
    field: 'card_bin',
    by: ['account_id'],
    window: '24h',
    event_types: ['payment'],
  },
};

/** The reference policy: 30 rules, five of them on the features above. */
export const standardPolicy = referencePolicy;

/**
 * A policy that costs a lot of CPU per event and is still accepted by the compiler's cost check:
 * `rules` rules, each a comprehension over `size` elements nested in another one (size² steps)
 * that never finds what it looks for, so every step runs.
 */
export function pathologicalPolicy(size = 300, rules = 3) {
  const list = `[${Array.from({ length: size }, (_, index) => index).join(', ')}]`;
  return {
    strategy: 'worst',
    on_missing: 'not_hit',
    rules: Array.from({ length: rules }, (_, index) => ({
      id: `nested-scan-${index + 1}`,
      name: 'nested scan',
      when: `${list}.exists(x, ${list}.exists(y, x * y == -1 - event.account_age_days - ${index}))`,
      verdict: 'review',
      reason: 'pathological on purpose (chaos drill)',
    })),
  };
}

/**
 * A tenant with a `decide`+`manage` key, the reference event type, the features and `policy`
 * published. Waits until a decision is made under the published version. Returns
 * `{ tenantId, apiKey, policyVersion, sample }`.
 */
export async function setUpTenant(port, adminToken, { name, rateLimit, maxConcurrency, policy }) {
  const tenant = await apiOk(port, 'POST', '/v1/admin/tenants', adminToken, {
    name,
    rate_limit: rateLimit ?? { rps: 1_000_000, burst: 10_000_000 },
    max_concurrency: maxConcurrency ?? 100_000,
  });
  const tenantId = tenant.body.id;
  const key = await apiOk(port, 'POST', `/v1/admin/tenants/${tenantId}/keys`, adminToken, {
    scopes: ['decide', 'manage'],
  });
  const apiKey = key.body.api_key;
  await apiOk(port, 'PUT', '/v1/manage/event-types/payment', apiKey, eventTypeSchema);
  for (const [featureName, definition] of Object.entries(featureDefinitions)) {
    await apiOk(port, 'PUT', `/v1/manage/features/${featureName}`, apiKey, definition);
  }
  const saved = await apiOk(
    port,
    'POST',
    '/v1/manage/policies/payment/versions',
    apiKey,
    policy ?? standardPolicy,
  );
  const policyVersion = saved.body.version;
  await apiOk(port, 'POST', `/v1/manage/policies/payment/versions/${policyVersion}/publish`, apiKey, {});
  const [event] = generateEvents(1, 7);
  // A published change reaches the serving path within 1 s (SPEC §4).
  const started = Date.now();
  for (let attempt = 0; ; attempt += 1) {
    const decision = await apiOk(port, 'POST', '/v1/decisions', apiKey, {
      type: 'payment',
      id: `setup-check-${attempt}`,
      fields: event.fields,
      timeout_ms: 5000,
    });
    if (decision.body.policy_version === policyVersion)
      return { tenantId, apiKey, policyVersion, sample: decision.body };
    if (Date.now() - started > 5000) {
      throw new Error(`policy version ${policyVersion} of ${name} is not serving after 5 s`);
    }
    await sleep(50);
  }
}

/**
 * Whether the fault-injection API is there: a body that cannot be valid is answered 4xx by the
 * route, 404 when the route does not exist.
 */
export async function faultApiMissing(port, adminToken) {
  const probe = await api(port, 'POST', '/v1/admin/faults', adminToken, {});
  return probe.status === 404 ? 'POST /v1/admin/faults' : null;
}

/** Injects a fault; `{ id }`, or `{ error }` with the node's answer when it is refused. */
export async function injectFault(port, adminToken, fault) {
  const answer = await api(port, 'POST', '/v1/admin/faults', adminToken, fault);
  if (answer.status === 201 || answer.status === 200) return { id: answer.body?.id };
  return { error: `${answer.status} ${JSON.stringify(answer.body)}` };
}

export async function removeFault(port, adminToken, id) {
  if (id === undefined || id === null) return;
  await api(port, 'DELETE', `/v1/admin/faults/${encodeURIComponent(id)}`, adminToken).catch(() => {});
}

/**
 * Checks before the load that the node takes this fault: injects it for 1 s and removes it at
 * once, so that a missing component or kind is reported as such and not as a bad run.
 */
export async function probeFault(port, adminToken, fault) {
  const missing = await faultApiMissing(port, adminToken);
  if (missing !== null) return missing;
  const probe = await injectFault(port, adminToken, { ...fault, duration_seconds: 1 });
  if (probe.error !== undefined) return `fault ${fault.component}/${fault.kind} refused: ${probe.error}`;
  await removeFault(port, adminToken, probe.id);
  return null;
}
