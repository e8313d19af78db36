import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { compilesEagerly, lazySerializer, lazyValidator } from './lazy-schemas.js';

const schema = {
  type: 'object',
  properties: { name: { type: 'string' }, n: { type: 'integer' } },
  required: ['name'],
  additionalProperties: false,
};

describe('lazy route schemas', () => {
  it('compiles a validator once, on its first call, and reports its errors', () => {
    const ajv = new Ajv({ allErrors: true });
    let compiles = 0;
    const validate = lazyValidator(() => {
      compiles += 1;
      return ajv.compile(schema);
    });
    expect(compiles).toBe(0);
    expect(validate({ name: 'a' })).toBe(true);
    expect(validate.errors).toBeNull();
    expect(validate({ n: 'x', extra: 1 })).toBe(false);
    expect(validate.errors?.map((error) => error.keyword).sort()).toEqual([
      'additionalProperties',
      'required',
      'type',
    ]);
    expect(validate({ name: 'b' })).toBe(true);
    expect(validate.errors).toBeNull();
    expect(compiles).toBe(1);
  });

  it('serializes by the schema, dropping what it does not list', () => {
    for (const now of [false, true]) {
      const serialize = lazySerializer(schema, now);
      expect(JSON.parse(serialize({ name: 'a', n: 2, secret: 'x' }))).toEqual({ name: 'a', n: 2 });
    }
  });

  it('compiles the data plane at start-up and the rest on use', () => {
    for (const url of ['/v1/decisions', '/v1/decisions/batch', '/v1/events', '/v1/feedback'])
      expect(compilesEagerly(url), url).toBe(true);
    for (const url of [
      '/v1/manage/decisions',
      '/v1/admin/tenants',
      '/v1/manage/lists/:name',
      '/v1/decisionsx',
    ])
      expect(compilesEagerly(url), url).toBe(false);
  });
});
