/** Names of CEL's primitive and well-known types that the checker treats as atoms. */
export type PrimitiveKind =
  | 'int'
  | 'uint'
  | 'double'
  | 'bool'
  | 'string'
  | 'bytes'
  | 'null_type'
  | 'timestamp'
  | 'duration';

/**
 * A static CEL type. `object` is a message-like record with a closed set of typed fields (used for
 * `event`, `features`, `models` and enrichment results); `param` is a type parameter of an overload
 * or a type variable of the checker.
 */
export type CelType =
  | { readonly kind: PrimitiveKind }
  | { readonly kind: 'dyn' }
  | { readonly kind: 'error' }
  | { readonly kind: 'list'; readonly element: CelType }
  | { readonly kind: 'map'; readonly key: CelType; readonly value: CelType }
  | { readonly kind: 'type'; readonly type: CelType | undefined }
  | { readonly kind: 'object'; readonly name: string; readonly fields: ReadonlyMap<string, CelType> }
  | { readonly kind: 'param'; readonly name: string };

export type ListType = Extract<CelType, { kind: 'list' }>;
export type MapType = Extract<CelType, { kind: 'map' }>;
export type ObjectType = Extract<CelType, { kind: 'object' }>;

export const INT: CelType = { kind: 'int' };
export const UINT: CelType = { kind: 'uint' };
export const DOUBLE: CelType = { kind: 'double' };
export const BOOL: CelType = { kind: 'bool' };
export const STRING: CelType = { kind: 'string' };
export const BYTES: CelType = { kind: 'bytes' };
export const NULL: CelType = { kind: 'null_type' };
export const TIMESTAMP: CelType = { kind: 'timestamp' };
export const DURATION: CelType = { kind: 'duration' };
export const DYN: CelType = { kind: 'dyn' };
export const ERROR: CelType = { kind: 'error' };

export function listOf(element: CelType): CelType {
  return { kind: 'list', element };
}

export function mapOf(key: CelType, value: CelType): CelType {
  return { kind: 'map', key, value };
}

export function typeOf(type: CelType | undefined): CelType {
  return { kind: 'type', type };
}

export function param(name: string): CelType {
  return { kind: 'param', name };
}

/** A message-like record type with named, typed fields. */
export function objectType(
  name: string,
  fields: Record<string, CelType> | ReadonlyMap<string, CelType>,
): ObjectType {
  const map = fields instanceof Map ? fields : new Map(Object.entries(fields));
  return { kind: 'object', name, fields: map };
}

/** The CEL name of a type, as `type()` and error messages show it. */
export function formatType(type: CelType): string {
  switch (type.kind) {
    case 'list':
      return `list(${formatType(type.element)})`;
    case 'map':
      return `map(${formatType(type.key)}, ${formatType(type.value)})`;
    case 'type':
      return type.type === undefined ? 'type' : `type(${formatType(type.type)})`;
    case 'object':
      return type.name;
    case 'param':
      return type.name;
    case 'timestamp':
      return 'google.protobuf.Timestamp';
    case 'duration':
      return 'google.protobuf.Duration';
    default:
      return type.kind;
  }
}

/**
 * Type-variable bindings found while checking one expression. Unification binds variables; a
 * failed trial is undone by working on a copy.
 */
export class Substitution {
  readonly bindings: Map<string, CelType>;

  constructor(bindings?: Map<string, CelType>) {
    this.bindings = new Map(bindings);
  }

  copy(): Substitution {
    return new Substitution(this.bindings);
  }

  /** Replaces bound variables in a type, recursively. Unbound variables stay, or become `dyn` when `finalize`. */
  resolve(type: CelType, finalize = false, depth = 0): CelType {
    if (depth > 64) return DYN;
    switch (type.kind) {
      case 'param': {
        const bound = this.bindings.get(type.name);
        if (bound === undefined) return finalize ? DYN : type;
        return this.resolve(bound, finalize, depth + 1);
      }
      case 'list':
        return listOf(this.resolve(type.element, finalize, depth + 1));
      case 'map':
        return mapOf(
          this.resolve(type.key, finalize, depth + 1),
          this.resolve(type.value, finalize, depth + 1),
        );
      case 'type':
        return type.type === undefined ? type : typeOf(this.resolve(type.type, finalize, depth + 1));
      default:
        return type;
    }
  }

  /**
   * Whether a value of type `actual` may be used where `expected` is wanted, binding type variables
   * as needed. `dyn` fits everything both ways, as in CEL's checker.
   */
  unify(expected: CelType, actual: CelType): boolean {
    const left = this.resolveTop(expected);
    const right = this.resolveTop(actual);
    if (left.kind === 'param' && right.kind === 'param' && left.name === right.name) return true;
    if (left.kind === 'param') return this.bind(left.name, right);
    if (right.kind === 'param') return this.bind(right.name, left);
    if (left.kind === 'dyn' || right.kind === 'dyn' || left.kind === 'error' || right.kind === 'error')
      return true;
    switch (left.kind) {
      case 'list':
        return right.kind === 'list' && this.unify(left.element, right.element);
      case 'map':
        return right.kind === 'map' && this.unify(left.key, right.key) && this.unify(left.value, right.value);
      case 'type':
        // Type values all share the runtime type `type`; their parameters do not constrain.
        return right.kind === 'type';
      case 'object':
        return right.kind === 'object' && right.name === left.name;
      default:
        return left.kind === right.kind;
    }
  }

  private resolveTop(type: CelType): CelType {
    let current = type;
    for (let step = 0; step < 64 && current.kind === 'param'; step++) {
      const bound = this.bindings.get(current.name);
      if (bound === undefined) return current;
      current = bound;
    }
    return current;
  }

  private bind(name: string, type: CelType): boolean {
    if (occurs(name, type, this)) return type.kind === 'param' && type.name === name;
    this.bindings.set(name, type);
    return true;
  }
}

function occurs(name: string, type: CelType, substitution: Substitution, depth = 0): boolean {
  if (depth > 64) return true;
  switch (type.kind) {
    case 'param': {
      if (type.name === name) return true;
      const bound = substitution.bindings.get(type.name);
      return bound !== undefined && occurs(name, bound, substitution, depth + 1);
    }
    case 'list':
      return occurs(name, type.element, substitution, depth + 1);
    case 'map':
      return (
        occurs(name, type.key, substitution, depth + 1) || occurs(name, type.value, substitution, depth + 1)
      );
    case 'type':
      return type.type !== undefined && occurs(name, type.type, substitution, depth + 1);
    default:
      return false;
  }
}

/** Whether two fully resolved types are the same. */
export function sameType(left: CelType, right: CelType): boolean {
  return formatType(left) === formatType(right);
}
