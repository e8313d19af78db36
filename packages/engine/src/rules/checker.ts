import type { CallExpr, ComprehensionExpr, Expr, SelectExpr } from './ast.js';
import type { Environment } from './environment.js';
import type { OverloadDeclaration } from './function-registry.js';
import type { ParseResult } from './parser.js';
import type { CelIssue } from './source.js';
import {
  BOOL,
  BYTES,
  type CelType,
  DOUBLE,
  DYN,
  ERROR,
  formatType,
  INT,
  listOf,
  mapOf,
  NULL,
  param,
  STRING,
  Substitution,
  UINT,
} from './types.js';

/** What an identifier or a call resolved to. */
export type Reference =
  | { readonly kind: 'variable'; readonly name: string }
  | { readonly kind: 'local'; readonly name: string }
  | { readonly kind: 'type'; readonly type: CelType }
  | { readonly kind: 'overloads'; readonly overloads: readonly OverloadDeclaration[] };

/** The result of type-checking a parsed expression. */
export interface CheckResult {
  /** The type of the whole expression. */
  readonly type: CelType;
  /** The type of every node, by node id. */
  readonly types: ReadonlyMap<number, CelType>;
  /** What identifiers, qualified names and calls resolved to, by node id. */
  readonly references: ReadonlyMap<number, Reference>;
  readonly errors: readonly CelIssue[];
}

/** Type names usable as values, as `type(x) == int`. */
export const TYPE_IDENTIFIERS: ReadonlyMap<string, CelType> = new Map<string, CelType>([
  ['int', INT],
  ['uint', UINT],
  ['double', DOUBLE],
  ['bool', BOOL],
  ['string', STRING],
  ['bytes', BYTES],
  ['null_type', NULL],
  ['list', listOf(DYN)],
  ['map', mapOf(DYN, DYN)],
  ['type', { kind: 'type', type: undefined }],
  ['google.protobuf.Timestamp', { kind: 'timestamp' }],
  ['google.protobuf.Duration', { kind: 'duration' }],
]);

const LOGICAL = new Set(['_&&_', '_||_']);

interface Scope {
  readonly name: string;
  readonly type: CelType;
  readonly parent: Scope | undefined;
}

function lookup(scope: Scope | undefined, name: string): CelType | undefined {
  for (let current = scope; current !== undefined; current = current.parent) {
    if (current.name === name) return current.type;
  }
  return undefined;
}

/** The dotted name of a chain of selects on an identifier (`a.b.c`), or undefined. */
export function qualifiedName(expr: Expr): string | undefined {
  if (expr.kind === 'ident') return expr.name;
  if (expr.kind === 'select' && !expr.testOnly) {
    const prefix = qualifiedName(expr.operand);
    return prefix === undefined ? undefined : `${prefix}.${expr.field}`;
  }
  return undefined;
}

/**
 * Type-checks a parsed expression against an environment: every identifier must be declared, every
 * field of a declared object must exist, and every call must match an overload.
 */
export function check(parsed: ParseResult, environment: Environment): CheckResult {
  const checker = new Checker(parsed, environment);
  const type = checker.visit(parsed.expr, undefined);
  return checker.finish(type);
}

class Checker {
  private readonly types = new Map<number, CelType>();
  private readonly references = new Map<number, Reference>();
  private readonly errors: CelIssue[] = [];
  private substitution = new Substitution();
  private freshCounter = 0;

  constructor(
    private readonly parsed: ParseResult,
    private readonly environment: Environment,
  ) {}

  finish(type: CelType): CheckResult {
    const types = new Map<number, CelType>();
    for (const [id, nodeType] of this.types) types.set(id, this.substitution.resolve(nodeType, true));
    return {
      type: this.substitution.resolve(type, true),
      types,
      references: this.references,
      errors: this.errors,
    };
  }

  private error(offset: number, message: string): CelType {
    this.errors.push(this.parsed.source.issue('check', offset, message));
    return ERROR;
  }

  private fresh(): CelType {
    return param(`_T${++this.freshCounter}`);
  }

  private record(expr: Expr, type: CelType): CelType {
    this.types.set(expr.id, type);
    return type;
  }

  private resolve(type: CelType): CelType {
    return this.substitution.resolve(type);
  }

  visit(expr: Expr, scope: Scope | undefined): CelType {
    return this.record(expr, this.visitNode(expr, scope));
  }

  private visitNode(expr: Expr, scope: Scope | undefined): CelType {
    switch (expr.kind) {
      case 'literal':
        return expr.literalType === 'null' ? NULL : { kind: expr.literalType };
      case 'ident':
        return this.identifier(expr.id, expr.name, expr.offset, scope);
      case 'select':
        return this.select(expr, scope);
      case 'call':
        return this.call(expr, scope);
      case 'list': {
        let element = this.fresh();
        for (const item of expr.elements) element = this.join(element, this.visit(item, scope));
        return listOf(element);
      }
      case 'map': {
        let key = this.fresh();
        let value = this.fresh();
        for (const entry of expr.entries) {
          const keyType = this.resolve(this.visit(entry.key, scope));
          if (!['int', 'uint', 'bool', 'string', 'dyn', 'error', 'param'].includes(keyType.kind)) {
            this.error(entry.key.offset, `unsupported map key type: ${formatType(keyType)}`);
          }
          key = this.join(key, keyType);
          value = this.join(value, this.visit(entry.value, scope));
        }
        return mapOf(key, value);
      }
      case 'struct':
        for (const field of expr.fields) this.visit(field.value, scope);
        return this.error(
          expr.offset,
          `message construction '${expr.typeName}{...}' is not supported (no protobuf messages)`,
        );
      case 'comprehension':
        return this.comprehension(expr, scope);
      default:
        return ERROR;
    }
  }

  /** The most specific type of two element types: unified when they fit, else `dyn`. */
  private join(accumulated: CelType, next: CelType): CelType {
    const trial = this.substitution.copy();
    if (trial.unify(accumulated, next)) {
      this.substitution = trial;
      return accumulated;
    }
    return DYN;
  }

  private identifier(id: number, name: string, offset: number, scope: Scope | undefined): CelType {
    const local = lookup(scope, name);
    if (local !== undefined) {
      this.references.set(id, { kind: 'local', name });
      return local;
    }
    const bareName = name.startsWith('.') ? name.slice(1) : name;
    const declared = this.environment.variables.get(bareName);
    if (declared !== undefined) {
      this.references.set(id, { kind: 'variable', name: bareName });
      return declared;
    }
    const typeName = TYPE_IDENTIFIERS.get(bareName);
    if (typeName !== undefined) {
      this.references.set(id, { kind: 'type', type: typeName });
      return { kind: 'type', type: typeName };
    }
    if (this.environment.dynamicVariables) {
      this.references.set(id, { kind: 'variable', name: bareName });
      return DYN;
    }
    return this.error(offset, `undeclared reference to '${bareName}'`);
  }

  private select(expr: SelectExpr, scope: Scope | undefined): CelType {
    // A dotted name may be one declared variable (`a.b.c`), unless its root is a local variable.
    const qualified = expr.testOnly ? undefined : qualifiedName(expr);
    if (qualified !== undefined && lookup(scope, qualified.split('.')[0] ?? '') === undefined) {
      const declared = this.environment.variables.get(qualified.replace(/^\./, ''));
      if (declared !== undefined) {
        this.references.set(expr.id, { kind: 'variable', name: qualified.replace(/^\./, '') });
        return declared;
      }
      const typeName = TYPE_IDENTIFIERS.get(qualified);
      if (typeName !== undefined) {
        this.references.set(expr.id, { kind: 'type', type: typeName });
        return { kind: 'type', type: typeName };
      }
    }
    const operand = this.resolve(this.visit(expr.operand, scope));
    const result = this.fieldType(operand, expr.field, expr.offset);
    return expr.testOnly ? BOOL : result;
  }

  private fieldType(operand: CelType, field: string, offset: number): CelType {
    switch (operand.kind) {
      case 'object': {
        const fieldType = operand.fields.get(field);
        if (fieldType === undefined)
          return this.error(offset, `undefined field '${field}' on ${operand.name}`);
        return fieldType;
      }
      case 'map':
        if (!this.substitution.unify(STRING, operand.key)) {
          return this.error(offset, `type '${formatType(operand)}' does not support field selection`);
        }
        return operand.value;
      case 'dyn':
      case 'error':
        return operand.kind === 'dyn' ? DYN : ERROR;
      case 'param':
        return DYN;
      default:
        return this.error(offset, `type '${formatType(operand)}' does not support field selection`);
    }
  }

  private comprehension(expr: ComprehensionExpr, scope: Scope | undefined): CelType {
    const range = this.resolve(this.visit(expr.range, scope));
    let iterType: CelType;
    if (range.kind === 'list') iterType = range.element;
    else if (range.kind === 'map') iterType = range.key;
    else if (range.kind === 'dyn' || range.kind === 'error' || range.kind === 'param') iterType = DYN;
    else
      iterType = this.error(
        expr.range.offset,
        `expression of type '${formatType(range)}' cannot be the range of a comprehension`,
      );
    const inner: Scope = { name: expr.iterVar, type: iterType, parent: scope };
    if (expr.predicate !== undefined) {
      const predicate = this.resolve(this.visit(expr.predicate, inner));
      if (!this.substitution.unify(BOOL, predicate)) {
        this.error(
          expr.predicate.offset,
          `${expr.macro}() predicate must be bool, found '${formatType(predicate)}'`,
        );
      }
    }
    switch (expr.macro) {
      case 'map':
        return listOf(this.visit(expr.transform as Expr, inner));
      case 'filter':
        return listOf(iterType);
      default:
        return BOOL;
    }
  }

  private call(expr: CallExpr, scope: Scope | undefined): CelType {
    const argumentTypes: CelType[] = [];
    if (expr.target !== undefined) argumentTypes.push(this.visit(expr.target, scope));
    for (const argument of expr.args) argumentTypes.push(this.visit(argument, scope));
    if (LOGICAL.has(expr.function) || expr.function === '_?_:_') return this.builtIn(expr, argumentTypes);
    const declaration = this.environment.functions.get(expr.function.replace(/^\./, ''));
    if (declaration === undefined)
      return this.error(expr.offset, `undeclared reference to '${expr.function}'`);
    const receiver = expr.target !== undefined;
    const candidates: OverloadDeclaration[] = [];
    const results: CelType[] = [];
    let firstTrial: Substitution | undefined;
    for (const overload of declaration.overloads) {
      if (overload.receiver !== receiver || overload.params.length !== argumentTypes.length) continue;
      const trial = this.substitution.copy();
      const renames = new Map<string, CelType>();
      const instantiate = (type: CelType): CelType => this.instantiate(type, renames);
      let fits = true;
      for (let index = 0; index < argumentTypes.length && fits; index++) {
        fits = trial.unify(instantiate(overload.params[index] as CelType), argumentTypes[index] as CelType);
      }
      if (!fits) continue;
      candidates.push(overload);
      results.push(trial.resolve(instantiate(overload.result)));
      firstTrial ??= trial;
    }
    if (candidates.length === 0) {
      const shown = argumentTypes.map((type) => formatType(this.substitution.resolve(type, true))).join(', ');
      return this.error(
        expr.offset,
        `found no matching overload for '${expr.function}' applied to '(${shown})'`,
      );
    }
    this.references.set(expr.id, { kind: 'overloads', overloads: candidates });
    if (candidates.length === 1 && firstTrial !== undefined) {
      this.substitution = firstTrial;
      const validate = candidates[0]?.validate;
      if (validate !== undefined) {
        const argumentExprs = expr.target === undefined ? expr.args : [expr.target, ...expr.args];
        const constants = argumentExprs.map((argument) =>
          argument.kind === 'literal' ? argument.value : undefined,
        );
        const problem = validate(constants, this.environment.lists);
        if (problem !== undefined) return this.error(expr.offset, problem);
      }
      return results[0] as CelType;
    }
    const first = results[0] as CelType;
    return results.every((result) => formatType(result) === formatType(first)) ? first : DYN;
  }

  private instantiate(type: CelType, renames: Map<string, CelType>): CelType {
    switch (type.kind) {
      case 'param': {
        let renamed = renames.get(type.name);
        if (renamed === undefined) {
          renamed = this.fresh();
          renames.set(type.name, renamed);
        }
        return renamed;
      }
      case 'list':
        return listOf(this.instantiate(type.element, renames));
      case 'map':
        return mapOf(this.instantiate(type.key, renames), this.instantiate(type.value, renames));
      case 'type':
        return type.type === undefined ? type : { kind: 'type', type: this.instantiate(type.type, renames) };
      default:
        return type;
    }
  }

  private builtIn(expr: CallExpr, argumentTypes: CelType[]): CelType {
    if (expr.function === '_?_:_') {
      const [condition, whenTrue, whenFalse] = argumentTypes as [CelType, CelType, CelType];
      if (!this.substitution.unify(BOOL, condition)) {
        this.error(expr.offset, `conditional must be bool, found '${formatType(this.resolve(condition))}'`);
      }
      const trial = this.substitution.copy();
      if (trial.unify(whenTrue, whenFalse)) {
        this.substitution = trial;
        return whenTrue;
      }
      return this.error(
        expr.offset,
        `found no matching overload for '_?_:_' applied to '(bool, ${formatType(this.resolve(whenTrue))}, ${formatType(this.resolve(whenFalse))})'`,
      );
    }
    for (const type of argumentTypes) {
      if (!this.substitution.unify(BOOL, type)) {
        const shown = argumentTypes.map((argument) => formatType(this.resolve(argument))).join(', ');
        return this.error(
          expr.offset,
          `found no matching overload for '${expr.function}' applied to '(${shown})'`,
        );
      }
    }
    return BOOL;
  }
}
