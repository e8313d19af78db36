import type { CallExpr, ComprehensionExpr, Expr, SelectExpr } from './ast.js';
import type { CheckResult } from './checker.js';
import type { Environment } from './environment.js';
import { evaluationGuard as guard } from './evaluation-guard.js';
import type { FieldSlots } from './field-slots.js';
import type { Evaluator } from './program.js';
import { type CelType, formatType, type ObjectType } from './types.js';
import { CelError, codePointLength, INT64_MAX, INT64_MIN } from './values.js';
import { EMPTY_RULE_SERVICES } from './vigil-functions.js';

/*
 * The typed closure compiler of rule sets: the checker knows the type of every node, so a
 * comparison of two doubles compiles to one closure comparing two numbers, with no overload
 * dispatch, no boxing and no bigint. Ints are JavaScript numbers while they are safe integers and
 * bigints beyond (JavaScript compares the two exactly); an int operation whose result leaves the
 * safe range is redone on bigints, with CEL's int64 overflow error. Field reads come from the rule
 * set's filled slots (`field-slots.ts`), and an operand that is a field or a constant is read
 * inline by its parent rather than through a closure of its own.
 *
 * Anything this compiler does not cover (timestamps, maps, service functions, `dyn`, ...) is
 * compiled by the general compiler and called as a closure: the results are the same values
 * (ints as bigints are valid here). The semantics are the general compiler's, error values
 * included; `typed-compiler.test.ts` checks the two against each other.
 */

/** The static kinds this compiler evaluates itself; `other` nodes come from the general compiler. */
type Kind = 'bool' | 'int' | 'double' | 'string' | 'list' | 'other';

/** One compiled node. */
interface Node {
  readonly kind: Kind;
  readonly evaluate: Evaluator;
  /** Set when the value is known when compiling (never an error). */
  readonly constant: boolean;
  readonly value: unknown;
  /** Set when the node is a plain read of a field slot (or of a comprehension variable). */
  readonly field: FieldRead | undefined;
}

/** Where a field's value is, and its errors. */
interface FieldRead {
  readonly values: unknown[];
  readonly slot: number;
  readonly missing: CelError;
  readonly wrongType: CelError;
  /** An int read as the host gave it (any number or bigint), for comparisons. */
  readonly raw?: boolean;
}

const NO_SUCH_OVERLOAD = new CelError('no such overload');
const OVERFLOW = new CelError('integer overflow');
const DIVIDE_BY_ZERO = new CelError('divide by zero');
const MODULUS_BY_ZERO = new CelError('modulus by zero');
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MIN_SAFE = Number.MIN_SAFE_INTEGER;
/** Below this magnitude, `Math.trunc(x / y)` of two ints is exact. */
export const EXACT_DIVISION = 2 ** 52;
const TWO_TO_63 = 2 ** 63;

/** The compiler of the nodes it does not cover: the general closure compiler. */
export type FallbackCompiler = (expr: Expr) => Evaluator;

/** What the typed compiler needs from the general one. */
export interface TypedCompilerContext {
  readonly environment: Environment;
  readonly checked: CheckResult;
  readonly fieldSlots: FieldSlots;
  /** Bounds of comprehension ranges from the cost estimate, by node id. */
  readonly rangeSizes: ReadonlyMap<number, number>;
  readonly fallback: FallbackCompiler;
}

/**
 * Compiles a bool expression of a rule set to one closure, or returns undefined when its root is
 * not something this compiler covers (the caller then uses the general compiler).
 */
export function compileTyped(expr: Expr, context: TypedCompilerContext): Evaluator | undefined {
  if (context.checked.types.get(expr.id)?.kind !== 'bool') return undefined;
  const compiler = new TypedCompiler(context);
  const node = compiler.node(expr);
  if (compiler.fallbacks > 0 && compiler.covered === 0) return undefined;
  return node.evaluate;
}

/** Thrown inside a comprehension's predicate when part of it needs the general compiler. */
class NotCovered extends Error {}

function constantNode(kind: Kind, value: unknown): Node {
  return { kind, evaluate: () => value, constant: true, value, field: undefined };
}

/** A node computed when compiling: a constant, or a node yielding the error it produced. */
function foldedNode(kind: Kind, value: unknown): Node {
  return value instanceof CelError ? dynamicNode(kind, () => value) : constantNode(kind, value);
}

function dynamicNode(kind: Kind, evaluate: Evaluator, field?: FieldRead): Node {
  return { kind, evaluate, constant: false, value: undefined, field };
}

function kindOf(type: CelType | undefined): Kind {
  switch (type?.kind) {
    case 'bool':
    case 'int':
    case 'double':
    case 'string':
    case 'list':
      return type.kind;
    default:
      return 'other';
  }
}

/** An int as this compiler represents it: a safe-integer number, else the bigint. */
export function intValue(value: bigint): number | bigint {
  return value >= BigInt(MIN_SAFE) && value <= BigInt(MAX_SAFE) ? Number(value) : value;
}

/** `x op y` on ints beyond the safe range, exactly, with CEL's overflow error. */
export function bigIntOperation(
  operation: string,
  x: number | bigint,
  y: number | bigint,
): number | bigint | CelError {
  const a = BigInt(x);
  const b = BigInt(y);
  let result: bigint;
  switch (operation) {
    case '_+_':
      result = a + b;
      break;
    case '_-_':
      result = a - b;
      break;
    case '_*_':
      result = a * b;
      break;
    case '_/_':
      if (b === 0n) return DIVIDE_BY_ZERO;
      result = a / b;
      break;
    default:
      if (b === 0n) return MODULUS_BY_ZERO;
      return intValue(a % b);
  }
  return result > INT64_MAX || result < INT64_MIN ? OVERFLOW : intValue(result);
}

/** `int(x)` of a double beyond the safe range (CEL truncates; out of int64 is an error). */
export function bigDoubleToInt(value: number): number | bigint | CelError {
  if (!Number.isFinite(value) || value <= -TWO_TO_63 || value >= TWO_TO_63) {
    return new CelError('int range error');
  }
  return intValue(BigInt(Math.trunc(value)));
}

/** A relation `x op y` on two numbers, or on ints that may be bigints (compared exactly). */
export type Relation = '<' | '<=' | '>' | '>=' | '==' | '!=';

export const RELATIONS: ReadonlyMap<string, Relation> = new Map<string, Relation>([
  ['_<_', '<'],
  ['_<=_', '<='],
  ['_>_', '>'],
  ['_>=_', '>='],
  ['_==_', '=='],
  ['_!=_', '!='],
]);

const MIRRORED: Readonly<Record<Relation, Relation>> = {
  '<': '>',
  '<=': '>=',
  '>': '<',
  '>=': '<=',
  '==': '==',
  '!=': '!=',
};

/** Overload ids of the calls this compiler covers, by what they do. */
export const STRING_TESTS: ReadonlyMap<string, 'startsWith' | 'endsWith' | 'contains'> = new Map([
  ['starts_with_string', 'startsWith'],
  ['ends_with_string', 'endsWith'],
  ['contains_string', 'contains'],
] as const);

class TypedCompiler {
  /** Nodes compiled here / handed to the general compiler. */
  covered = 0;
  fallbacks = 0;
  /** Comprehension variables in scope: their slots, in `locals`. */
  private readonly scope: { name: string; slot: number; kind: Kind }[] = [];
  private readonly locals: unknown[] = [];
  /** Inside a comprehension's predicate, the general compiler cannot be used (it has no scope). */
  private insideComprehension = 0;

  constructor(private readonly context: TypedCompilerContext) {}

  private typeOf(expr: Expr): CelType | undefined {
    return this.context.checked.types.get(expr.id);
  }

  private fallback(expr: Expr): Node {
    if (this.insideComprehension > 0) throw new NotCovered();
    this.fallbacks++;
    return dynamicNode(kindOf(this.typeOf(expr)), this.context.fallback(expr));
  }

  node(expr: Expr): Node {
    const node = this.compile(expr);
    return node ?? this.fallback(expr);
  }

  private compile(expr: Expr): Node | undefined {
    switch (expr.kind) {
      case 'literal':
        return this.literal(expr.value, expr.literalType);
      case 'ident':
        return this.local(expr.name);
      case 'select':
        return this.select(expr);
      case 'call':
        return this.call(expr);
      case 'list':
        return this.list(expr.elements);
      case 'comprehension':
        return this.comprehension(expr);
      default:
        return undefined;
    }
  }

  private literal(value: unknown, literalType: string): Node | undefined {
    switch (literalType) {
      case 'int':
        return constantNode('int', intValue(value as bigint));
      case 'double':
        return constantNode('double', value);
      case 'string':
        return constantNode('string', value);
      case 'bool':
        return constantNode('bool', value);
      default:
        return undefined;
    }
  }

  private list(elements: readonly Expr[]): Node | undefined {
    const values: unknown[] = [];
    for (const element of elements) {
      if (element.kind !== 'literal') return undefined;
      const node = this.literal(element.value, element.literalType);
      if (node === undefined) return undefined;
      values.push(node.value);
    }
    this.covered++;
    return constantNode('list', Object.freeze(values));
  }

  /** A comprehension variable of a primitive type. */
  private local(name: string): Node | undefined {
    for (let index = this.scope.length - 1; index >= 0; index--) {
      const entry = this.scope[index] as { name: string; slot: number; kind: Kind };
      if (entry.name !== name) continue;
      if (entry.kind === 'other' || entry.kind === 'list') return undefined;
      return this.read(entry.kind, {
        values: this.locals,
        slot: entry.slot,
        missing: new CelError(`no value for '${name}'`),
        wrongType: new CelError(`element '${name}' is not a ${entry.kind}`),
      });
    }
    return undefined;
  }

  /** The slot of `root.field` when `expr` reads a field of a declared object variable. */
  private slotOf(expr: SelectExpr): { read: FieldRead; type: CelType } | undefined {
    const operand = expr.operand;
    if (operand.kind !== 'ident' || this.scope.some((entry) => entry.name === operand.name)) return undefined;
    if (this.context.checked.references.get(expr.id) !== undefined) return undefined;
    const reference = this.context.checked.references.get(operand.id);
    if (reference?.kind !== 'variable') return undefined;
    if (this.context.environment.variables.get(reference.name)?.kind !== 'object') return undefined;
    const fieldType = (this.typeOf(operand) as ObjectType | undefined)?.fields.get(expr.field);
    if (fieldType === undefined) return undefined;
    return {
      type: fieldType,
      read: {
        values: this.context.fieldSlots.values,
        slot: this.context.fieldSlots.slot(reference.name, expr.field),
        missing: new CelError(`no such key: ${expr.field}`),
        wrongType: new CelError(`field '${expr.field}' is not a ${formatType(fieldType)}`),
      },
    };
  }

  private select(expr: SelectExpr): Node | undefined {
    const field = this.slotOf(expr);
    if (field === undefined) return undefined;
    this.covered++;
    const { values, slot } = field.read;
    if (expr.testOnly) return dynamicNode('bool', () => values[slot] !== undefined);
    const kind = kindOf(field.type);
    if (kind === 'other') return undefined;
    return this.read(kind, field.read);
  }

  /** A read of a slot holding a value of `kind`, checking what the host put there. */
  private read(kind: Kind, field: FieldRead): Node {
    const { values, slot, missing, wrongType } = field;
    switch (kind) {
      case 'bool':
        return dynamicNode(
          kind,
          () => {
            const value = values[slot];
            return typeof value === 'boolean' ? value : value === undefined ? missing : wrongType;
          },
          field,
        );
      case 'string':
        return dynamicNode(
          kind,
          () => {
            const value = values[slot];
            return typeof value === 'string' ? value : value === undefined ? missing : wrongType;
          },
          field,
        );
      case 'double':
        return dynamicNode(kind, () => readDouble(values[slot], missing, wrongType), field);
      case 'int':
        return dynamicNode(kind, () => readInt(values[slot], missing, wrongType), field);
      default:
        return dynamicNode(
          kind,
          () => {
            const value = values[slot];
            return Array.isArray(value) ? value : value === undefined ? missing : wrongType;
          },
          field,
        );
    }
  }

  private call(expr: CallExpr): Node | undefined {
    const args = expr.target === undefined ? expr.args : [expr.target, ...expr.args];
    switch (expr.function) {
      case '_&&_':
      case '_||_':
        return this.logical(expr.function === '_||_', expr.function, args);
      case '!_':
        return this.not(args[0] as Expr);
      case '_?_:_':
        return this.conditional(args as [Expr, Expr, Expr]);
      default:
        break;
    }
    const reference = this.context.checked.references.get(expr.id);
    if (reference?.kind !== 'overloads' || reference.overloads.length !== 1) return undefined;
    const overload = (reference.overloads[0] as { id: string }).id;
    const types = args.map((argument) => kindOf(this.typeOf(argument)));
    const relation = RELATIONS.get(expr.function);
    if (relation !== undefined && args.length === 2) return this.relation(relation, args, types);
    if (expr.function === '@in' && args.length === 2) return this.inList(args as [Expr, Expr], types);
    const stringTest = STRING_TESTS.get(overload);
    if (stringTest !== undefined) return this.stringTest(stringTest, args as [Expr, Expr]);
    switch (overload) {
      case 'size_string':
      case 'string_size':
        return this.unary('int', args[0] as Expr, (x) => stringSize(x as string));
      case 'size_list':
      case 'list_size':
        return this.unary('int', args[0] as Expr, (x) => (x as unknown[]).length);
      case 'int64_to_int64':
      case 'double_to_double':
        return this.node(args[0] as Expr);
      case 'double_to_int64':
        return this.unary('int', args[0] as Expr, (x) => {
          const value = x as number;
          return value > -EXACT_DIVISION && value < EXACT_DIVISION
            ? Math.trunc(value) + 0
            : bigDoubleToInt(value);
        });
      case 'int64_to_double':
        return this.unary('double', args[0] as Expr, (x) => (typeof x === 'number' ? x : Number(x)));
      case 'negate_int64':
        return this.unary('int', args[0] as Expr, (x) =>
          typeof x === 'number' ? -x + 0 : bigIntOperation('_-_', 0, x as bigint),
        );
      case 'negate_double':
        return this.unary('double', args[0] as Expr, (x) => -(x as number));
      case 'add_int64':
      case 'subtract_int64':
      case 'multiply_int64':
      case 'divide_int64':
      case 'modulo_int64':
        return this.intArithmetic(expr.function, args as [Expr, Expr]);
      case 'add_double':
      case 'subtract_double':
      case 'multiply_double':
      case 'divide_double':
        return this.doubleArithmetic(expr.function, args as [Expr, Expr]);
      default:
        return undefined;
    }
  }

  /** A unary operation on a value of a covered kind; `operation` gets a value, never an error. */
  private unary(kind: Kind, operandExpr: Expr, operation: (value: unknown) => unknown): Node | undefined {
    if (kindOf(this.typeOf(operandExpr)) === 'other') return undefined;
    const operand = this.node(operandExpr);
    this.covered++;
    const evaluate = operand.evaluate;
    const node = dynamicNode(kind, (activation, services) => {
      const value = evaluate(activation, services);
      return value instanceof CelError ? value : operation(value);
    });
    return operand.constant ? foldedNode(kind, node.evaluate({}, EMPTY_RULE_SERVICES)) : node;
  }

  /**
   * `a && b && ...` (or `||`) with CEL's commutative short-circuit: the first decisive operand
   * decides, whichever side it is on; else the first error, else the neutral value.
   */
  private logical(isOr: boolean, name: string, argumentExprs: readonly Expr[]): Node {
    const operands: Expr[] = [];
    const flatten = (expr: Expr): void => {
      if (expr.kind === 'call' && expr.function === name && expr.target === undefined)
        expr.args.forEach(flatten);
      else operands.push(expr);
    };
    argumentExprs.forEach(flatten);
    const nodes = isOr ? this.stringTestGroups(operands) : operands.map((operand) => this.node(operand));
    this.covered++;
    const decisive = isOr;
    if (nodes.some((node) => node.constant && node.value === decisive)) return constantNode('bool', decisive);
    const live = nodes.filter((node) => !(node.constant && node.value === !decisive));
    if (live.length === 0) return constantNode('bool', !decisive);
    if (live.length === 1) return this.asBool(live[0] as Node);
    const evaluators = live.map((node) => node.evaluate);
    if (evaluators.length === 2) {
      const a = evaluators[0] as Evaluator;
      const b = evaluators[1] as Evaluator;
      return dynamicNode(
        'bool',
        isOr
          ? (activation, services) => {
              const x = a(activation, services);
              if (x === true) return true;
              const y = b(activation, services);
              if (y === true) return true;
              if (x === false) return y === false ? false : failureOf(y);
              return failureOf(x);
            }
          : (activation, services) => {
              const x = a(activation, services);
              if (x === false) return false;
              const y = b(activation, services);
              if (y === false) return false;
              if (x === true) return y === true ? true : failureOf(y);
              return failureOf(x);
            },
      );
    }
    const count = evaluators.length;
    return dynamicNode('bool', (activation, services) => {
      let failure: unknown;
      for (let index = 0; index < count; index++) {
        const value = (evaluators[index] as Evaluator)(activation, services);
        if (value === decisive) return decisive;
        if (value !== !decisive && failure === undefined) failure = value;
      }
      return failure === undefined ? !decisive : failureOf(failure);
    });
  }

  /**
   * The operands of an `||`, where prefix, suffix and substring tests of one string field against
   * constants (`event.email.endsWith('@a.com') || event.email.endsWith('@b.com')`) become one
   * node, at the place of the first: it reads the field once and runs the tests in a loop. `||`
   * is commutative and the tests of one field fail the same way, so the result is the same.
   */
  private stringTestGroups(operands: readonly Expr[]): Node[] {
    const groups = new Map<number, { index: number; field: FieldRead; tests: [string, string][] }>();
    const nodes: (Node | undefined)[] = [];
    operands.forEach((operand, index) => {
      const test = this.constantStringTest(operand);
      const group = test === undefined ? undefined : groups.get(test.field.slot);
      if (test === undefined) {
        nodes.push(this.node(operand));
      } else if (group !== undefined && group.field.values === test.field.values) {
        group.tests.push([test.test, test.argument]);
        nodes.push(undefined);
      } else {
        groups.set(test.field.slot, { index, field: test.field, tests: [[test.test, test.argument]] });
        nodes.push(this.node(operand));
      }
    });
    for (const group of groups.values()) {
      if (group.tests.length > 1) nodes[group.index] = this.anyStringTest(group.field, group.tests);
    }
    return nodes.filter((node): node is Node => node !== undefined);
  }

  /** `field.startsWith('constant')` (or `endsWith`, `contains`) on a string field slot. */
  private constantStringTest(
    expr: Expr,
  ): { field: FieldRead; test: 'startsWith' | 'endsWith' | 'contains'; argument: string } | undefined {
    if (expr.kind !== 'call' || expr.target === undefined || expr.args.length !== 1) return undefined;
    const argument = expr.args[0] as Expr;
    if (argument.kind !== 'literal' || typeof argument.value !== 'string') return undefined;
    const reference = this.context.checked.references.get(expr.id);
    if (reference?.kind !== 'overloads' || reference.overloads.length !== 1) return undefined;
    const test = STRING_TESTS.get((reference.overloads[0] as { id: string }).id);
    if (test === undefined || expr.target.kind !== 'select' || expr.target.testOnly) return undefined;
    const field = this.slotOf(expr.target);
    if (field === undefined || field.type.kind !== 'string') return undefined;
    return { field: field.read, test, argument: argument.value };
  }

  /** True when any of the tests holds on the string field (see {@link stringTestGroups}). */
  private anyStringTest(field: FieldRead, tests: readonly [string, string][]): Node {
    const { values, slot, missing, wrongType } = field;
    const prefixes = tests.filter(([test]) => test === 'startsWith').map(([, argument]) => argument);
    const suffixes = tests.filter(([test]) => test === 'endsWith').map(([, argument]) => argument);
    const parts = tests.filter(([test]) => test === 'contains').map(([, argument]) => argument);
    return dynamicNode('bool', () => {
      const value = values[slot];
      if (typeof value !== 'string') return value === undefined ? missing : wrongType;
      for (let index = 0; index < prefixes.length; index++) {
        if (value.startsWith(prefixes[index] as string)) return true;
      }
      for (let index = 0; index < suffixes.length; index++) {
        if (value.endsWith(suffixes[index] as string)) return true;
      }
      if (parts.length === 0) return false;
      // `contains` charges the CPU guard for its scans, as one call per test would.
      if (guard.spend(value.length * 0.1 * parts.length)) return guard.error;
      for (let index = 0; index < parts.length; index++) {
        if (value.includes(parts[index] as string)) return true;
      }
      return false;
    });
  }

  /** A node whose value must be a bool: anything else is an error. */
  private asBool(node: Node): Node {
    if (node.kind === 'bool') return node;
    const evaluate = node.evaluate;
    return dynamicNode('bool', (activation, services) => {
      const value = evaluate(activation, services);
      return typeof value === 'boolean' ? value : failureOf(value);
    });
  }

  private not(operandExpr: Expr): Node {
    const operand = this.node(operandExpr);
    this.covered++;
    if (operand.constant && typeof operand.value === 'boolean') return constantNode('bool', !operand.value);
    const field = operand.kind === 'bool' ? operand.field : undefined;
    if (field !== undefined) {
      const { values, slot, missing, wrongType } = field;
      return dynamicNode('bool', () => {
        const value = values[slot];
        return typeof value === 'boolean' ? !value : value === undefined ? missing : wrongType;
      });
    }
    const evaluate = operand.evaluate;
    return dynamicNode('bool', (activation, services) => {
      const value = evaluate(activation, services);
      return value === true ? false : value === false ? true : failureOf(value);
    });
  }

  private conditional([conditionExpr, whenTrueExpr, whenFalseExpr]: [Expr, Expr, Expr]): Node {
    const condition = this.node(conditionExpr);
    const whenTrue = this.node(whenTrueExpr);
    const whenFalse = this.node(whenFalseExpr);
    this.covered++;
    const kind =
      kindOf(this.typeOf(whenTrueExpr)) === kindOf(this.typeOf(whenFalseExpr)) ? whenTrue.kind : 'other';
    if (condition.constant && typeof condition.value === 'boolean')
      return condition.value ? whenTrue : whenFalse;
    const test = condition.evaluate;
    if (whenTrue.constant && whenFalse.constant) {
      const a = whenTrue.value;
      const b = whenFalse.value;
      return dynamicNode(kind, (activation, services) => {
        const value = test(activation, services);
        return value === true ? a : value === false ? b : failureOf(value);
      });
    }
    const a = whenTrue.evaluate;
    const b = whenFalse.evaluate;
    return dynamicNode(kind, (activation, services) => {
      const value = test(activation, services);
      if (value === true) return a(activation, services);
      if (value === false) return b(activation, services);
      return failureOf(value);
    });
  }

  /**
   * `<`, `<=`, `>`, `>=`, `==`, `!=` on two ints, two doubles, an int and a double (compared as
   * doubles, as the general compiler does), or `==`/`!=` on two strings or two bools.
   */
  private relation(written: Relation, argumentExprs: readonly Expr[], types: Kind[]): Node | undefined {
    let relation = written;
    const [leftKind, rightKind] = types as [Kind, Kind];
    const numeric = (kind: Kind): boolean => kind === 'int' || kind === 'double';
    const equality = relation === '==' || relation === '!=';
    let mode: 'int' | 'double' | 'identity';
    if (numeric(leftKind) && numeric(rightKind)) {
      if (equality && leftKind !== rightKind) return undefined;
      mode = leftKind === 'int' && rightKind === 'int' ? 'int' : 'double';
    } else if (equality && leftKind === rightKind && (leftKind === 'string' || leftKind === 'bool')) {
      mode = 'identity';
    } else {
      return undefined;
    }
    // An int field is compared as the host gave it, as the general compiler does: any number or
    // bigint (JavaScript compares the two exactly), not only a safe integer.
    const ordering = !equality;
    let left = this.comparand(this.node(argumentExprs[0] as Expr), ordering);
    let right = this.comparand(this.node(argumentExprs[1] as Expr), ordering);
    this.covered++;
    if (left.constant && !right.constant) {
      [left, right] = [right, left];
      relation = MIRRORED[relation];
    }
    if (left.constant) {
      return constantNode('bool', compare(relation, mode, left.value, right.value));
    }
    if (right.constant) {
      let y = right.value as number | bigint | string | boolean;
      if (mode === 'double' && typeof y === 'bigint') y = Number(y);
      return dynamicNode('bool', this.compareToConstant(relation, mode, left, y));
    }
    return dynamicNode('bool', this.compareNodes(relation, mode, left, right));
  }

  /** An operand of `<`, `<=`, `>`, `>=`: an int field read raw (see {@link relation}). */
  private comparand(node: Node, ordering: boolean): Node {
    const field = node.field;
    if (!ordering || node.kind !== 'int' || field === undefined) return node;
    const { values, slot, missing, wrongType } = field;
    return dynamicNode(
      'int',
      () => {
        const value = values[slot];
        return typeof value === 'number' || typeof value === 'bigint'
          ? value
          : value === undefined
            ? missing
            : wrongType;
      },
      { ...field, raw: true },
    );
  }

  private compareToConstant(
    relation: Relation,
    mode: 'int' | 'double' | 'identity',
    left: Node,
    y: number | bigint | string | boolean,
  ): Evaluator {
    const field = left.field;
    if (field !== undefined && (typeof y === 'number' || mode === 'identity')) {
      // The field is read inline; the common representation takes one type check.
      const { values, slot, missing, wrongType } = field;
      if (mode === 'identity') {
        const type = typeof y;
        const slow = (value: unknown): unknown => (value === undefined ? missing : wrongType);
        return relation === '=='
          ? () => {
              const value = values[slot];
              return typeof value === type ? value === y : slow(value);
            }
          : () => {
              const value = values[slot];
              return typeof value === type ? value !== y : slow(value);
            };
      }
      const slow = (value: unknown): unknown => {
        const x =
          left.kind !== 'int'
            ? readDouble(value, missing, wrongType)
            : field.raw === true
              ? left.evaluate(undefined as never, undefined as never)
              : readInt(value, missing, wrongType);
        return typeof x === 'object' ? x : compare(relation, mode, x, y);
      };
      const limit = y as number;
      // A raw int field (ordering relations) compares any number inline, as a double field does;
      // for `==` and `!=` an int field must hold a safe integer.
      return left.kind === 'int' && field.raw !== true
        ? intFieldRelation(relation, values, slot, limit, slow)
        : doubleFieldRelation(relation, values, slot, limit, slow);
    }
    const evaluate = left.evaluate;
    if (mode === 'int' && typeof y === 'number') {
      // `size(x) >= 3`, `a % 100 == 0`: a number result compares inline.
      const slow = (x: unknown): unknown => (x instanceof CelError ? x : compare(relation, mode, x, y));
      switch (relation) {
        case '<':
          return (activation, services) => {
            const x = evaluate(activation, services);
            return typeof x === 'number' ? x < y : slow(x);
          };
        case '<=':
          return (activation, services) => {
            const x = evaluate(activation, services);
            return typeof x === 'number' ? x <= y : slow(x);
          };
        case '>':
          return (activation, services) => {
            const x = evaluate(activation, services);
            return typeof x === 'number' ? x > y : slow(x);
          };
        case '>=':
          return (activation, services) => {
            const x = evaluate(activation, services);
            return typeof x === 'number' ? x >= y : slow(x);
          };
        case '==':
          return (activation, services) => {
            const x = evaluate(activation, services);
            return typeof x === 'number' ? x === y : slow(x);
          };
        default:
          return (activation, services) => {
            const x = evaluate(activation, services);
            return typeof x === 'number' ? x !== y : slow(x);
          };
      }
    }
    if (mode !== 'double' || left.kind !== 'double' || typeof y !== 'number') {
      return (activation, services) => {
        const x = evaluate(activation, services);
        return x instanceof CelError ? x : compare(relation, mode, x, y);
      };
    }
    switch (relation) {
      case '<':
        return (activation, services) => {
          const x = evaluate(activation, services);
          return typeof x === 'number' ? x < y : failureOf(x);
        };
      case '<=':
        return (activation, services) => {
          const x = evaluate(activation, services);
          return typeof x === 'number' ? x <= y : failureOf(x);
        };
      case '>':
        return (activation, services) => {
          const x = evaluate(activation, services);
          return typeof x === 'number' ? x > y : failureOf(x);
        };
      case '>=':
        return (activation, services) => {
          const x = evaluate(activation, services);
          return typeof x === 'number' ? x >= y : failureOf(x);
        };
      case '==':
        return (activation, services) => {
          const x = evaluate(activation, services);
          return typeof x === 'number' ? x === y : failureOf(x);
        };
      default:
        return (activation, services) => {
          const x = evaluate(activation, services);
          return typeof x === 'number' ? x !== y : failureOf(x);
        };
    }
  }

  private compareNodes(
    relation: Relation,
    mode: 'int' | 'double' | 'identity',
    left: Node,
    right: Node,
  ): Evaluator {
    if (mode === 'identity' && left.field !== undefined && right.field !== undefined) {
      // `event.bin_country != event.country`: both read inline.
      const a = left.field;
      const b = right.field;
      const type = left.kind === 'string' ? 'string' : 'boolean';
      const negate = relation === '!=';
      const av = a.values;
      const bv = b.values;
      const as = a.slot;
      const bs = b.slot;
      const slow = (x: unknown, y: unknown): unknown =>
        typeof x !== type
          ? x === undefined
            ? a.missing
            : a.wrongType
          : typeof y !== type
            ? y === undefined
              ? b.missing
              : b.wrongType
            : (x === y) !== negate;
      return type === 'string'
        ? () => {
            const x = av[as];
            const y = bv[bs];
            return typeof x === 'string' && typeof y === 'string' ? (x === y) !== negate : slow(x, y);
          }
        : () => slow(av[as], bv[bs]);
    }
    const a = left.evaluate;
    const b = right.evaluate;
    if (mode === 'double' && left.kind === 'double' && right.kind === 'double') {
      switch (relation) {
        case '<':
          return (activation, services) => {
            const x = a(activation, services);
            if (typeof x !== 'number') return failureOf(x);
            const y = b(activation, services);
            return typeof y === 'number' ? x < y : failureOf(y);
          };
        case '<=':
          return (activation, services) => {
            const x = a(activation, services);
            if (typeof x !== 'number') return failureOf(x);
            const y = b(activation, services);
            return typeof y === 'number' ? x <= y : failureOf(y);
          };
        case '>':
          return (activation, services) => {
            const x = a(activation, services);
            if (typeof x !== 'number') return failureOf(x);
            const y = b(activation, services);
            return typeof y === 'number' ? x > y : failureOf(y);
          };
        case '>=':
          return (activation, services) => {
            const x = a(activation, services);
            if (typeof x !== 'number') return failureOf(x);
            const y = b(activation, services);
            return typeof y === 'number' ? x >= y : failureOf(y);
          };
        default:
          break;
      }
    }
    return (activation, services) => {
      const x = a(activation, services);
      if (x instanceof CelError) return x;
      const y = b(activation, services);
      if (y instanceof CelError) return y;
      return compare(relation, mode, x, y);
    };
  }

  /** `x in [constants]`: a set lookup, for strings, bools and ints. */
  private inList([leftExpr, rightExpr]: [Expr, Expr], types: Kind[]): Node | undefined {
    const kind = types[0] as Kind;
    if (kind !== 'string' && kind !== 'int' && kind !== 'bool') return undefined;
    if (rightExpr.kind !== 'list') return undefined;
    const list = this.list(rightExpr.elements);
    if (list === undefined) return undefined;
    const elements = list.value as readonly unknown[];
    const javascriptType = kind === 'string' ? 'string' : kind === 'bool' ? 'boolean' : 'number';
    // Ints beyond the safe range stay bigints: rare, so left to the general compiler.
    if (!elements.every((element) => typeof element === javascriptType)) return undefined;
    const set = new Set(elements);
    const left = this.node(leftExpr);
    this.covered++;
    if (left.constant) return constantNode('bool', set.has(left.value));
    const field = left.field;
    if (field !== undefined && kind === 'string') {
      const { values, slot, missing, wrongType } = field;
      return dynamicNode('bool', () => {
        const value = values[slot];
        return typeof value === 'string' ? set.has(value) : value === undefined ? missing : wrongType;
      });
    }
    const evaluate = left.evaluate;
    if (kind === 'int') {
      return dynamicNode('bool', (activation, services) => {
        const value = evaluate(activation, services);
        if (typeof value === 'number') return set.has(value);
        return typeof value === 'bigint' ? false : failureOf(value);
      });
    }
    return dynamicNode('bool', (activation, services) => {
      const value = evaluate(activation, services);
      return value instanceof CelError ? value : set.has(value);
    });
  }

  /** `startsWith`, `endsWith`, `contains`; `contains` charges the CPU guard for its scan. */
  private stringTest(
    test: 'startsWith' | 'endsWith' | 'contains',
    [targetExpr, argumentExpr]: [Expr, Expr],
  ): Node {
    const target = this.node(targetExpr);
    const argument = this.node(argumentExpr);
    this.covered++;
    if (argument.constant && typeof argument.value === 'string' && target.field !== undefined) {
      const { values, slot, missing, wrongType } = target.field;
      const y = argument.value;
      const slow = (value: unknown): unknown => (value === undefined ? missing : wrongType);
      switch (test) {
        case 'startsWith':
          return dynamicNode('bool', () => {
            const value = values[slot];
            return typeof value === 'string' ? value.startsWith(y) : slow(value);
          });
        case 'endsWith':
          return dynamicNode('bool', () => {
            const value = values[slot];
            return typeof value === 'string' ? value.endsWith(y) : slow(value);
          });
        default:
          return dynamicNode('bool', () => {
            const value = values[slot];
            if (typeof value !== 'string') return slow(value);
            return guard.spend(value.length * 0.1) ? guard.error : value.includes(y);
          });
      }
    }
    const a = target.evaluate;
    const b = argument.evaluate;
    return dynamicNode('bool', (activation, services) => {
      const x = a(activation, services);
      if (typeof x !== 'string') return failureOf(x);
      const y = b(activation, services);
      if (typeof y !== 'string') return failureOf(y);
      if (test === 'startsWith') return x.startsWith(y);
      if (test === 'endsWith') return x.endsWith(y);
      return guard.spend(x.length * 0.1) ? guard.error : x.includes(y);
    });
  }

  /** `+`, `-`, `*`, `/`, `%` on ints: on numbers while exact, else on bigints. */
  private intArithmetic(name: string, [leftExpr, rightExpr]: [Expr, Expr]): Node {
    const left = this.node(leftExpr);
    const right = this.node(rightExpr);
    this.covered++;
    const a = left.evaluate;
    const b = right.evaluate;
    let evaluate: Evaluator;
    switch (name) {
      case '_+_':
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x === 'object') return x;
          const y = b(activation, services);
          if (typeof y === 'object') return y;
          if (typeof x === 'number' && typeof y === 'number') {
            const result = x + y;
            if (result <= MAX_SAFE && result >= MIN_SAFE) return result;
          }
          return bigIntOperation(name, x as number | bigint, y as number | bigint);
        };
        break;
      case '_-_':
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x === 'object') return x;
          const y = b(activation, services);
          if (typeof y === 'object') return y;
          if (typeof x === 'number' && typeof y === 'number') {
            const result = x - y;
            if (result <= MAX_SAFE && result >= MIN_SAFE) return result + 0;
          }
          return bigIntOperation(name, x as number | bigint, y as number | bigint);
        };
        break;
      case '_*_':
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x === 'object') return x;
          const y = b(activation, services);
          if (typeof y === 'object') return y;
          if (typeof x === 'number' && typeof y === 'number') {
            const result = x * y;
            if (result <= MAX_SAFE && result >= MIN_SAFE) return result + 0;
          }
          return bigIntOperation(name, x as number | bigint, y as number | bigint);
        };
        break;
      case '_/_':
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x === 'object') return x;
          const y = b(activation, services);
          if (typeof y === 'object') return y;
          if (
            typeof x === 'number' &&
            typeof y === 'number' &&
            y !== 0 &&
            x < EXACT_DIVISION &&
            x > -EXACT_DIVISION &&
            y < EXACT_DIVISION &&
            y > -EXACT_DIVISION
          ) {
            return Math.trunc(x / y) + 0;
          }
          return bigIntOperation(name, x as number | bigint, y as number | bigint);
        };
        break;
      default:
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x === 'object') return x;
          const y = b(activation, services);
          if (typeof y === 'object') return y;
          if (typeof x === 'number' && typeof y === 'number' && y !== 0) return (x % y) + 0;
          return bigIntOperation(name, x as number | bigint, y as number | bigint);
        };
    }
    if (left.constant && right.constant) return foldedNode('int', evaluate({}, EMPTY_RULE_SERVICES));
    return dynamicNode('int', evaluate);
  }

  /** `+`, `-`, `*`, `/` on doubles. */
  private doubleArithmetic(name: string, [leftExpr, rightExpr]: [Expr, Expr]): Node {
    const left = this.node(leftExpr);
    const right = this.node(rightExpr);
    this.covered++;
    const a = left.evaluate;
    const b = right.evaluate;
    const check =
      (operation: (x: number, y: number) => number): Evaluator =>
      (activation, services) => {
        const x = a(activation, services);
        if (typeof x !== 'number') return failureOf(x);
        const y = b(activation, services);
        return typeof y === 'number' ? operation(x, y) : failureOf(y);
      };
    let evaluate: Evaluator;
    switch (name) {
      case '_+_':
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x !== 'number') return failureOf(x);
          const y = b(activation, services);
          return typeof y === 'number' ? x + y : failureOf(y);
        };
        break;
      case '_-_':
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x !== 'number') return failureOf(x);
          const y = b(activation, services);
          return typeof y === 'number' ? x - y : failureOf(y);
        };
        break;
      case '_*_':
        evaluate = (activation, services) => {
          const x = a(activation, services);
          if (typeof x !== 'number') return failureOf(x);
          const y = b(activation, services);
          return typeof y === 'number' ? x * y : failureOf(y);
        };
        break;
      default:
        evaluate = check((x, y) => x / y);
    }
    if (left.constant && right.constant) return foldedNode('double', evaluate({}, EMPTY_RULE_SERVICES));
    return dynamicNode('double', evaluate);
  }

  /** `list.exists(x, p)` and `list.all(x, p)` when the predicate is covered; else undefined. */
  private comprehension(expr: ComprehensionExpr): Node | undefined {
    if ((expr.macro !== 'exists' && expr.macro !== 'all') || expr.predicate === undefined) return undefined;
    const rangeType = this.typeOf(expr.range);
    if (rangeType?.kind !== 'list') return undefined;
    const slot = this.locals.length;
    this.locals.push(undefined);
    this.scope.push({ name: expr.iterVar, slot, kind: kindOf(rangeType.element) });
    let predicate: Node;
    this.insideComprehension++;
    try {
      predicate = this.node(expr.predicate);
    } catch (error) {
      if (error instanceof NotCovered) return undefined;
      throw error;
    } finally {
      this.insideComprehension--;
      this.scope.pop();
    }
    const range = this.node(expr.range);
    this.covered++;
    const maxSize = this.context.rangeSizes.get(expr.id) ?? this.context.environment.limits.maxListSize;
    const tooLarge = new CelError(`comprehension range is larger than the bound of ${maxSize} elements`);
    const locals = this.locals;
    const stop = expr.macro === 'exists';
    const test = predicate.evaluate;
    const evaluateRange = range.evaluate;
    return dynamicNode('bool', (activation, services) => {
      const list = evaluateRange(activation, services);
      if (!Array.isArray(list)) return failureOf(list);
      if (list.length > maxSize) return tooLarge;
      let failure: unknown;
      for (let index = 0; index < list.length; index++) {
        // One unit of the CPU guard's credit per iteration, as in the general compiler.
        if (--guard.credit <= 0 && guard.check()) return guard.error;
        locals[slot] = list[index];
        const value = test(activation, services);
        if (value === stop) return stop;
        if (value !== !stop && failure === undefined) failure = value;
      }
      return failure === undefined ? !stop : failureOf(failure);
    });
  }
}

/** An error value as it is, anything else (a value of the wrong type) as `no such overload`. */
export function failureOf(value: unknown): CelError {
  return value instanceof CelError ? value : NO_SUCH_OVERLOAD;
}

/** A double field: a number, or an int the host gave as bigint. */
export function readDouble(value: unknown, missing: CelError, wrongType: CelError): unknown {
  return typeof value === 'number'
    ? value
    : typeof value === 'bigint'
      ? Number(value)
      : value === undefined
        ? missing
        : wrongType;
}

/** An int field: a safe-integer number or a bigint, as the host gave it. */
export function readInt(value: unknown, missing: CelError, wrongType: CelError): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : wrongType;
  if (typeof value === 'bigint') return intValue(value);
  return value === undefined ? missing : wrongType;
}

/** The number of code points of a string, scanning it only when its length does not tell. */
export function stringSize(text: string): number | CelError {
  const length = text.length;
  if (length === 0) return 0;
  if (guard.spend(length * 0.1)) return guard.error;
  // A regular expression scans faster than a loop; most strings have no surrogate to discount.
  return LOW_SURROGATE.test(text) ? codePointLength(text) : length;
}

/** The second half of a surrogate pair (or a lone one), which `codePointLength` does not count. */
const LOW_SURROGATE = /[\uDC00-\uDFFF]/;

/** `x relation y` for values of the mode's kind (ints compared exactly, or as doubles). */
export function compare(
  relation: Relation,
  mode: 'int' | 'double' | 'identity',
  x: unknown,
  y: unknown,
): boolean {
  let a = x as number | bigint;
  let b = y as number | bigint;
  if (mode === 'double') {
    a = Number(a);
    b = Number(b);
  } else if (mode === 'int' && typeof a !== typeof b && (relation === '==' || relation === '!=')) {
    // Only equality needs one type: `<` compares a number with a bigint exactly.
    a = BigInt(a);
    b = BigInt(b);
  }
  switch (relation) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '==':
      return a === b;
    default:
      return a !== b;
  }
}

type Slow = (value: unknown) => unknown;

/** `field relation y` for an int field: safe-integer numbers compare inline, anything else via `slow`. */
function intFieldRelation(
  relation: Relation,
  values: unknown[],
  slot: number,
  y: number,
  slow: Slow,
): Evaluator {
  switch (relation) {
    case '<':
      return () => {
        const value = values[slot];
        return Number.isSafeInteger(value) ? (value as number) < y : slow(value);
      };
    case '<=':
      return () => {
        const value = values[slot];
        return Number.isSafeInteger(value) ? (value as number) <= y : slow(value);
      };
    case '>':
      return () => {
        const value = values[slot];
        return Number.isSafeInteger(value) ? (value as number) > y : slow(value);
      };
    case '>=':
      return () => {
        const value = values[slot];
        return Number.isSafeInteger(value) ? (value as number) >= y : slow(value);
      };
    case '==':
      return () => {
        const value = values[slot];
        return Number.isSafeInteger(value) ? value === y : slow(value);
      };
    default:
      return () => {
        const value = values[slot];
        return Number.isSafeInteger(value) ? value !== y : slow(value);
      };
  }
}

/** `field relation y` for a double field: numbers compare inline, anything else via `slow`. */
function doubleFieldRelation(
  relation: Relation,
  values: unknown[],
  slot: number,
  y: number,
  slow: Slow,
): Evaluator {
  switch (relation) {
    case '<':
      return () => {
        const value = values[slot];
        return typeof value === 'number' ? value < y : slow(value);
      };
    case '<=':
      return () => {
        const value = values[slot];
        return typeof value === 'number' ? value <= y : slow(value);
      };
    case '>':
      return () => {
        const value = values[slot];
        return typeof value === 'number' ? value > y : slow(value);
      };
    case '>=':
      return () => {
        const value = values[slot];
        return typeof value === 'number' ? value >= y : slow(value);
      };
    case '==':
      return () => {
        const value = values[slot];
        return typeof value === 'number' ? value === y : slow(value);
      };
    default:
      return () => {
        const value = values[slot];
        return typeof value === 'number' ? value !== y : slow(value);
      };
  }
}
