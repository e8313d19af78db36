import type { FeatureInput } from '@vigil/protocol';
import { describe, expect, it } from 'vitest';
import { celRuleCompiler } from '../policy/cel-rule-compiler.js';
import type { EventTypeRecord } from '../ports/config-store.js';
import { ConfigRegistry } from '../tenancy/config-registry.js';
import type { FeatureRecord } from './feature-definition.js';

// How a feature's value type reaches the rule checker: ConfigRegistry.environment types
// `features.<name>` from the definition and the event type's schema.

const at = '2026-11-25T00:00:00.000Z';
const login: EventTypeRecord = {
  tenantId: 't',
  name: 'login',
  version: 1,
  updatedAt: at,
  schema: {
    fields: {
      account_id: { type: 'string', required: true },
      country: { type: 'string', required: true },
      ip: { type: 'ip' },
      amount: { type: 'number' },
    },
  },
};
const feature = (name: string, definition: Partial<FeatureInput>): FeatureRecord => ({
  tenantId: 't',
  name,
  version: 1,
  updatedAt: at,
  definition: {
    aggregation: 'last',
    by: ['account_id'],
    window: '24h',
    event_types: ['login'],
    ...definition,
  },
});

function compiler() {
  const registry = new ConfigRegistry();
  registry.putTenant({
    id: 't',
    name: 't',
    rateLimit: null,
    maxConcurrency: null,
    createdAt: at,
    updatedAt: at,
  });
  registry.putEventType(login);
  registry.putFeature(feature('last_country', { field: 'country' }));
  registry.putFeature(feature('last_ip', { field: 'ip' }));
  registry.putFeature(feature('last_amount', { field: 'amount' }));
  registry.putFeature(feature('logins', { aggregation: 'count' }));
  const environment = registry.environment(login);
  const rules = celRuleCompiler();
  return {
    environment,
    errors: (when: string) => rules.compile([{ id: 'r', when, verdict: 'review' }], environment).errors,
    rules: (when: string) => rules.compile([{ id: 'r', when, verdict: 'review' }], environment).rules,
  };
}

describe('feature value types in the rule checker', () => {
  it('types last of a string-like field as string, last of a number as double, counts as int', () => {
    expect(compiler().environment.features).toEqual({
      last_country: 'string',
      last_ip: 'string',
      last_amount: 'double',
      logins: 'int',
    });
  });

  it('accepts string comparisons and functions on last of strings', () => {
    const { errors } = compiler();
    expect(errors("features.last_country != '' && features.last_country != event.country")).toEqual([]);
    expect(
      errors("features.last_ip.startsWith('10.') || cidr_match(features.last_ip, '192.0.2.0/24')"),
    ).toEqual([]);
    expect(errors("features.last_country in ['FR', 'DE'] && features.last_amount > 100.0")).toEqual([]);
  });

  it('refuses comparing last of strings with a number, at save time', () => {
    const { errors } = compiler();
    expect(errors('features.last_country > 5').map((error) => error.message)).toEqual([
      expect.stringContaining("found no matching overload for '_>_' applied to '(string, int)'"),
    ]);
    expect(errors('features.last_country == 5.0')).not.toEqual([]);
    expect(errors('features.last_country + 1 > 2')).not.toEqual([]);
    expect(errors("features.last_amount == 'FR'")).not.toEqual([]);
  });

  it('evaluates a rule on last of strings with the value the store gives', () => {
    const compiled = compiler().rules(
      "features.last_country != '' && features.last_country != event.country",
    );
    if (compiled === undefined) throw new Error('did not compile');
    const evaluate = (lastCountry: string) => {
      const activation = {
        event: { account_id: 'a', country: 'FR' },
        features: { last_country: lastCountry },
        models: {},
      };
      compiled.prepare(activation);
      return compiled.evaluate(0, activation);
    };
    expect(evaluate('DE')).toBe(true);
    expect(evaluate('FR')).toBe(false);
    expect(evaluate('')).toBe(false);
  });
});
