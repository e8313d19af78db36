import type { CelType } from './types.js';
import { CelDuration, CelTimestamp, CelTypeValue, CelUint, isMap, isPlainObject } from './values.js';

/**
 * The runtime implementation of one overload. It receives the arguments (the receiver first for
 * receiver-style calls), never error values, followed by the evaluation's services object; it
 * returns a value or a `CelError`, and must not throw.
 */
export type OverloadImplementation = (...args: never[]) => unknown;

/** Estimates the cost of one call from the size bounds of its arguments (see `cost.ts`). */
export type CallCostEstimator = (argumentSizes: readonly number[]) => number;

/** One typed signature of a function. */
export interface OverloadDeclaration {
  /** Unique id, as `add_int64` or `string_contains`. */
  readonly id: string;
  /** Receiver-style (`target.f(args)`): the receiver is `params[0]`. */
  readonly receiver: boolean;
  readonly params: readonly CelType[];
  readonly result: CelType;
  readonly implementation: OverloadImplementation;
  /** Cost of one call; defaults to 1. Receives the maximum size of each argument. */
  readonly cost?: CallCostEstimator;
  /**
   * Checks arguments known when compiling (literals; `undefined` for the others) and returns an
   * error message to refuse the expression, as an unknown list name or a malformed CIDR.
   */
  readonly validate?: ArgumentValidator;
  /** Reads the evaluation's services (as `in_list`), so calls are never folded at compile time. */
  readonly usesServices?: boolean;
}

/** See {@link OverloadDeclaration.validate}. */
export type ArgumentValidator = (
  constantArguments: readonly unknown[],
  lists: ReadonlySet<string>,
) => string | undefined;

/** A named function with its overloads. */
export interface FunctionDeclaration {
  readonly name: string;
  readonly overloads: readonly OverloadDeclaration[];
}

/** An immutable set of functions, looked up by name. */
export class FunctionRegistry {
  private readonly functions: ReadonlyMap<string, FunctionDeclaration>;

  constructor(declarations: Iterable<FunctionDeclaration> = []) {
    const functions = new Map<string, FunctionDeclaration>();
    for (const declaration of declarations) {
      const existing = functions.get(declaration.name);
      functions.set(declaration.name, {
        name: declaration.name,
        overloads:
          existing === undefined ? declaration.overloads : [...existing.overloads, ...declaration.overloads],
      });
    }
    this.functions = functions;
  }

  /** A new registry with more functions; overloads of an existing name are added to it. */
  extend(declarations: Iterable<FunctionDeclaration>): FunctionRegistry {
    return new FunctionRegistry([...this.functions.values(), ...declarations]);
  }

  get(name: string): FunctionDeclaration | undefined {
    return this.functions.get(name);
  }

  names(): string[] {
    return [...this.functions.keys()];
  }
}

/** Shorthand to declare an overload. */
export function overload(
  id: string,
  params: readonly CelType[],
  result: CelType,
  implementation: OverloadImplementation,
  options: {
    receiver?: boolean;
    cost?: CallCostEstimator;
    validate?: ArgumentValidator;
    usesServices?: boolean;
  } = {},
): OverloadDeclaration {
  const declaration: { -readonly [K in keyof OverloadDeclaration]: OverloadDeclaration[K] } = {
    id,
    receiver: options.receiver ?? false,
    params,
    result,
    implementation,
  };
  if (options.cost !== undefined) declaration.cost = options.cost;
  if (options.validate !== undefined) declaration.validate = options.validate;
  if (options.usesServices === true) declaration.usesServices = true;
  return declaration;
}

/** Whether a runtime value has a shape that fits a declared parameter type (for dynamic dispatch). */
export function valueFits(value: unknown, type: CelType): boolean {
  switch (type.kind) {
    case 'dyn':
    case 'param':
    case 'error':
      return true;
    case 'int':
      return typeof value === 'bigint';
    case 'uint':
      return value instanceof CelUint;
    case 'double':
      return typeof value === 'number';
    case 'bool':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'bytes':
      return value instanceof Uint8Array;
    case 'null_type':
      return value === null;
    case 'timestamp':
      return value instanceof CelTimestamp;
    case 'duration':
      return value instanceof CelDuration;
    case 'list':
      return Array.isArray(value);
    case 'map':
      return isMap(value);
    case 'type':
      return value instanceof CelTypeValue;
    case 'object':
      return isPlainObject(value);
    default:
      return false;
  }
}
