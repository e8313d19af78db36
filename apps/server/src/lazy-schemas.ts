import type { ValidateFunction } from 'ajv';
import fastJsonStringify from 'fast-json-stringify';

/**
 * Routes whose schemas compile at start-up: the data plane, whose first requests must not pay for
 * a compilation. Every other route's validators and serializers compile on their first use.
 * Compiling all of them up front took about 400 ms of a node's start-up (ajv and
 * fast-json-stringify generate code for each of some 60 route schemas), most for control-plane
 * routes a node may not serve for minutes.
 */
const eagerRoutes = /^\/v1\/(decisions|events|feedback)(\/|$)/;

export const compilesEagerly = (url: string): boolean => eagerRoutes.test(url);

/** A validator for Fastify that compiles on its first call; `errors` as ajv's own function has it. */
export function lazyValidator(compile: () => ValidateFunction): ValidateFunction {
  let compiled: ValidateFunction | undefined;
  const validate = ((data: unknown) => {
    compiled ??= compile();
    const valid = compiled(data);
    validate.errors = compiled.errors;
    return valid;
  }) as ValidateFunction;
  validate.errors = null;
  return validate;
}

/** A response serializer for Fastify, built with fast-json-stringify now or on its first call. */
export function lazySerializer(schema: object, now = false): (data: unknown) => string {
  let serialize: ((data: unknown) => string) | undefined;
  if (now) serialize = fastJsonStringify(schema) as (data: unknown) => string;
  return (data) => {
    serialize ??= fastJsonStringify(schema) as (data: unknown) => string;
    return serialize(data);
  };
}
