import { type FunctionDeclaration, FunctionRegistry } from './function-registry.js';
import type { ParseLimits } from './parser.js';
import { standardFunctions } from './standard-library.js';
import { BOOL, type CelType, DOUBLE, INT, listOf, objectType, STRING, TIMESTAMP } from './types.js';
import { vigilFunctions } from './vigil-functions.js';

/** The field types of an event-type schema (SPEC §1). */
export type FieldType =
  | 'string'
  | 'number'
  | 'integer'
  | 'boolean'
  | 'ip'
  | 'email'
  | 'phone'
  | 'timestamp'
  | 'enum'
  | 'string_list';

/** The value type of a feature. */
export type FeatureType = 'int' | 'double' | 'string';

/** Bounds used by the cost estimator and the parser. */
export interface EnvironmentLimits {
  /** Largest expected list (list fields, list literals after concatenation, ...). Default 1000. */
  readonly maxListSize: number;
  /** Largest expected string, in code points. Default 1024. */
  readonly maxStringLength: number;
  /** Largest expected map. Default 1000. */
  readonly maxMapSize: number;
  /** An expression whose estimated worst-case cost is over this is refused. Default 1 000 000. */
  readonly costBudget: number;
  readonly parse: ParseLimits;
}

/** Everything an expression may reference: variables, functions, list names, and limits. */
export interface Environment {
  readonly variables: ReadonlyMap<string, CelType>;
  readonly functions: FunctionRegistry;
  /** Names accepted as the first argument of `in_list`. */
  readonly lists: ReadonlySet<string>;
  /**
   * When true, undeclared identifiers are typed `dyn` and read from the activation at runtime
   * (for hosts without a schema, and for the CEL conformance suite).
   */
  readonly dynamicVariables: boolean;
  readonly limits: EnvironmentLimits;
}

export const DEFAULT_LIMITS: EnvironmentLimits = {
  maxListSize: 1000,
  maxStringLength: 1024,
  maxMapSize: 1000,
  costBudget: 1_000_000,
  parse: { maxLength: 100_000, maxDepth: 250, maxErrors: 100 },
};

/** Options of {@link createCelEnvironment}: a general CEL environment. */
export interface CelEnvironmentOptions {
  readonly variables?: Readonly<Record<string, CelType>>;
  /** Functions added to the standard library (and to Vigil's functions when `vigilFunctions`). */
  readonly functions?: readonly FunctionDeclaration[];
  /** Include Vigil's functions (`in_list`, `cidr_match`, ...). Default true. */
  readonly vigilFunctions?: boolean;
  readonly lists?: readonly string[];
  readonly dynamicVariables?: boolean;
  readonly limits?: Partial<EnvironmentLimits>;
}

const standardRegistry = new FunctionRegistry(standardFunctions());
const vigilRegistry = standardRegistry.extend(vigilFunctions());

/** Builds a general environment from declared variables and functions. */
export function createCelEnvironment(options: CelEnvironmentOptions = {}): Environment {
  const base = options.vigilFunctions === false ? standardRegistry : vigilRegistry;
  return {
    variables: new Map(Object.entries(options.variables ?? {})),
    functions: options.functions === undefined ? base : base.extend(options.functions),
    lists: new Set(options.lists ?? []),
    dynamicVariables: options.dynamicVariables ?? false,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  };
}

/** Options of {@link createEnvironment}: Vigil's rule environment for one event type of one tenant. */
export interface RuleEnvironmentOptions {
  /** The event type's schema: field name to field type. */
  readonly event: Readonly<Record<string, FieldType>>;
  /** Feature names and their value types. */
  readonly features?: Readonly<Record<string, FeatureType>>;
  /** Model names; every score is a double. */
  readonly models?: readonly string[];
  /** List names usable in `in_list`. */
  readonly lists?: readonly string[];
  /** Extra functions. */
  readonly functions?: readonly FunctionDeclaration[];
  readonly limits?: Partial<EnvironmentLimits>;
}

/** The CEL type of an event field type. */
export function fieldCelType(fieldType: FieldType): CelType {
  switch (fieldType) {
    case 'number':
      return DOUBLE;
    case 'integer':
      return INT;
    case 'boolean':
      return BOOL;
    case 'timestamp':
      return TIMESTAMP;
    case 'string_list':
      return listOf(STRING);
    default:
      return STRING;
  }
}

/**
 * Builds the environment of a policy's rules: `event` with the schema's fields plus `type`, `id` and
 * `timestamp`; `features` and `models` as records of their declared names; Vigil's functions; and
 * the list names for `in_list`. Unknown fields, features and models are check errors.
 */
export function createEnvironment(options: RuleEnvironmentOptions): Environment {
  const eventFields = new Map<string, CelType>();
  for (const [name, fieldType] of Object.entries(options.event))
    eventFields.set(name, fieldCelType(fieldType));
  eventFields.set('type', STRING);
  eventFields.set('id', STRING);
  eventFields.set('timestamp', TIMESTAMP);
  const features = new Map<string, CelType>();
  for (const [name, featureType] of Object.entries(options.features ?? {})) {
    features.set(name, featureType === 'int' ? INT : featureType === 'string' ? STRING : DOUBLE);
  }
  const models = new Map<string, CelType>();
  for (const name of options.models ?? []) models.set(name, DOUBLE);
  const environmentOptions: CelEnvironmentOptions = {
    variables: {
      event: objectType('vigil.Event', eventFields),
      features: objectType('vigil.Features', features),
      models: objectType('vigil.Models', models),
    },
    lists: options.lists ?? [],
  };
  return createCelEnvironment({
    ...environmentOptions,
    ...(options.functions === undefined ? {} : { functions: options.functions }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
  });
}
