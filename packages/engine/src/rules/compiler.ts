import type { CallExpr, ComprehensionExpr, Expr, MapExpr, SelectExpr } from './ast.js';
import { directCall, guarded, type Implementation } from './call-evaluators.js';
import { type CheckResult, check, qualifiedName, type Reference } from './checker.js';
import { estimateCost } from './cost.js';
import type { Environment } from './environment.js';
import { evaluationGuard as guard } from './evaluation-guard.js';
import type { FieldSlots } from './field-slots.js';
import { type OverloadDeclaration, valueFits } from './function-registry.js';
import { generateRule } from './generated-rules.js';
import { HostKind, hostKind, readHostValue } from './host-values.js';
import { parse } from './parser.js';
import { type Activation, type CompiledExpression, type Evaluator, Program } from './program.js';
import {
  evaluateNode,
  logicalNode,
  makeSlotTest,
  runSlotTest,
  type SlotTest,
  SlotTestOperation,
  SlotValueKind,
} from './slot-test.js';
import type { CelIssue } from './source.js';
import { indexValue, inValue } from './standard-library.js';
import { compileTyped } from './typed-compiler.js';
import { type CelType, DYN, formatType, type ObjectType } from './types.js';
import {
  CelError,
  CelMap,
  CelTypeValue,
  CelUint,
  celEquals,
  isMap,
  isPlainObject,
  mapGet,
  mapKeys,
  TYPE_VALUES,
} from './values.js';
import { EMPTY_RULE_SERVICES, type RuleServices } from './vigil-functions.js';

export type { Activation, CompiledExpression, Evaluator, RuleActivation } from './program.js';

interface Compiled {
  readonly evaluate: Evaluator;
  /** Set when the node's value is known when compiling. */
  readonly constant: boolean;
  readonly value: unknown;
  /** Set when the node is a simple condition on a field slot (see `slot-test.ts`). */
  readonly test?: SlotTest;
}

function slotTestNode(test: SlotTest): Compiled {
  return {
    evaluate: (activation, services) => runSlotTest(test, activation, services),
    constant: false,
    value: undefined,
    test,
  };
}

/** The slot-test form of a compiled node: its own test, or a node calling its closure. */
function asTest(compiled: Compiled): SlotTest {
  return compiled.test ?? evaluateNode(compiled.evaluate);
}

/** Options of {@link compile}. */
export interface CompileOptions {
  /** Refuse expressions whose type is not bool (rules, feature filters). Default false. */
  readonly expectBoolean?: boolean;
  /** Type-check against the environment. Default true; false skips checking (dynamic dispatch only). */
  readonly check?: boolean;
  /**
   * Rules of a rule set only: generate a JavaScript function where the rule is covered
   * (`generated-rules.ts`). Default true; false keeps the typed closures (tests compare the two).
   */
  readonly generate?: boolean;
}

/** The outcome of {@link compile}: a program, or every error found. */
export type CompileResult =
  | { readonly ok: true; readonly program: CompiledExpression }
  | { readonly ok: false; readonly errors: readonly CelIssue[] };

/** @internal {@link CompileResult} with the concrete program. */
export type ProgramResult =
  | { readonly ok: true; readonly program: Program }
  | { readonly ok: false; readonly errors: readonly CelIssue[] };

const NO_SUCH_OVERLOAD = new CelError('no such overload');
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const RELATION_OPERATIONS = new Map<string, SlotTestOperation>([
  ['_<_', SlotTestOperation.Less],
  ['_<=_', SlotTestOperation.LessOrEqual],
  ['_>_', SlotTestOperation.Greater],
  ['_>=_', SlotTestOperation.GreaterOrEqual],
]);

const STRING_TESTS = new Map<string, SlotTestOperation>([
  ['startsWith', SlotTestOperation.StartsWith],
  ['endsWith', SlotTestOperation.EndsWith],
  ['contains', SlotTestOperation.Contains],
]);

const RELATIONS = new Map<string, (x: number | bigint, y: number | bigint) => boolean>([
  ['_<_', (x, y) => x < y],
  ['_<=_', (x, y) => x <= y],
  ['_>_', (x, y) => x > y],
  ['_>=_', (x, y) => x >= y],
]);

function constant(value: unknown): Compiled {
  return { evaluate: () => value, constant: true, value };
}

function dynamic(evaluate: Evaluator): Compiled {
  return { evaluate, constant: false, value: undefined };
}

/**
 * Parses, checks, estimates the cost of and compiles an expression to closures. User text is
 * never passed to `eval`, `Function` or `vm`.
 */
export function compile(environment: Environment, text: string, options: CompileOptions = {}): CompileResult {
  return compileWithSlots(environment, text, options, undefined);
}

/**
 * {@link compile}, with fields of top-level objects read from shared slots that the caller fills
 * before each evaluation (see `rule-set.ts`).
 * @internal
 */
export function compileWithSlots(
  environment: Environment,
  text: string,
  options: CompileOptions,
  fieldSlots: FieldSlots | undefined,
): ProgramResult {
  const parsed = parse(text, environment.limits.parse);
  if (parsed.errors.length > 0) return { ok: false, errors: parsed.errors };
  let checked: CheckResult | undefined;
  if (options.check !== false) {
    checked = check(parsed, environment);
    if (checked.errors.length > 0) return { ok: false, errors: checked.errors };
    if (options.expectBoolean === true && checked.type.kind !== 'bool' && checked.type.kind !== 'dyn') {
      return {
        ok: false,
        errors: [
          parsed.source.issue('check', 0, `expression must be bool, found '${formatType(checked.type)}'`),
        ],
      };
    }
  }
  const cost = estimateCost(parsed.expr, checked, environment);
  if (cost.max > environment.limits.costBudget) {
    return {
      ok: false,
      errors: [
        parsed.source.issue(
          'cost',
          cost.worstOffset,
          `estimated cost ${cost.max} exceeds the budget of ${environment.limits.costBudget}`,
        ),
      ],
    };
  }
  const compiler = new ExpressionCompiler(environment, checked, cost.rangeSizes, fieldSlots);
  // Rules of a rule set: a generated function (`generated-rules.ts`) where the rule is covered,
  // else typed closures (`typed-compiler.ts`), with the general compiler for what they do not cover.
  const generated =
    fieldSlots !== undefined && checked !== undefined && options.generate !== false
      ? generateRule(parsed.expr, { environment, checked, rangeSizes: cost.rangeSizes })
      : undefined;
  const typed =
    generated === undefined && fieldSlots !== undefined && checked !== undefined
      ? compileTyped(parsed.expr, {
          environment,
          checked,
          fieldSlots,
          rangeSizes: cost.rangeSizes,
          fallback: (expr) => compiler.compileNode(expr).evaluate,
        })
      : undefined;
  const root =
    generated !== undefined
      ? { evaluate: generated }
      : typed === undefined
        ? compiler.compileNode(parsed.expr)
        : { evaluate: typed };
  return {
    ok: true,
    program: new Program(text, checked?.type ?? DYN, cost, root, options.expectBoolean === true),
  };
}

function isConcrete(type: CelType | undefined): boolean {
  return type !== undefined && type.kind !== 'dyn' && type.kind !== 'param' && type.kind !== 'error';
}

interface SlotField {
  readonly values: unknown[];
  readonly slot: number;
  readonly type: CelType;
  readonly missing: CelError;
  readonly wrongType: CelError;
}

class ExpressionCompiler {
  /** Slots of comprehension variables, shared by the program's closures (evaluation is synchronous). */
  private readonly slots: unknown[] = [];
  private scope: { name: string; slot: number }[] = [];

  constructor(
    private readonly environment: Environment,
    private readonly checked: CheckResult | undefined,
    private readonly rangeSizes: ReadonlyMap<number, number>,
    private readonly fieldSlots: FieldSlots | undefined,
  ) {}

  private typeOf(expr: Expr): CelType {
    return this.checked?.types.get(expr.id) ?? DYN;
  }

  private reference(expr: Expr): Reference | undefined {
    return this.checked?.references.get(expr.id);
  }

  compileNode(expr: Expr): Compiled {
    switch (expr.kind) {
      case 'literal':
        return constant(expr.literalType === 'uint' ? new CelUint(expr.value as bigint) : expr.value);
      case 'ident':
        return this.identifier(expr, expr.name);
      case 'select':
        return this.select(expr);
      case 'call':
        return this.call(expr);
      case 'list':
        return this.list(expr.elements.map((element) => this.compileNode(element)));
      case 'map':
        return this.map(expr);
      case 'comprehension':
        return this.comprehension(expr);
      case 'struct':
        return constant(new CelError(`message construction '${expr.typeName}' is not supported`));
      default:
        return constant(new CelError('invalid expression'));
    }
  }

  private identifier(expr: Expr, name: string): Compiled {
    const reference = this.reference(expr);
    for (let index = this.scope.length - 1; index >= 0; index--) {
      const entry = this.scope[index] as { name: string; slot: number };
      if (entry.name === name) {
        const slots = this.slots;
        const slot = entry.slot;
        return dynamic(() => slots[slot]);
      }
    }
    if (reference?.kind === 'type') return constant(typeValue(reference.type));
    const bareName = name.replace(/^\./, '');
    const declared = this.environment.variables.get(bareName);
    if (reference === undefined && declared === undefined && this.checked === undefined) {
      const typeIdentifier = TYPE_NAMES.get(bareName);
      if (typeIdentifier !== undefined) return constant(typeIdentifier);
    }
    const missing = new CelError(`undeclared reference to '${bareName}' (no value in the activation)`);
    const kind = declared === undefined ? HostKind.Any : hostKind(declared);
    const wrongType = new CelError(`variable '${bareName}' is not a ${formatType(declared ?? DYN)}`);
    return dynamic((activation) => {
      const value = activation[bareName];
      return value === undefined ? missing : readHostValue(kind, value, wrongType);
    });
  }

  private select(expr: SelectExpr): Compiled {
    const qualified = this.checked === undefined ? qualifiedName(expr) : undefined;
    if (qualified !== undefined && !this.scope.some((entry) => entry.name === qualified.split('.')[0])) {
      // Unchecked: `a.b.c` may be one variable named `a.b.c`, as in cel-go's name resolution.
      const name = qualified.replace(/^\./, '');
      const fallback = this.selectNode(expr).evaluate;
      return dynamic((activation, services) => {
        const value = activation[name];
        return value === undefined ? fallback(activation, services) : value;
      });
    }
    return this.selectNode(expr);
  }

  private selectNode(expr: SelectExpr): Compiled {
    const reference = this.reference(expr);
    if (reference?.kind === 'variable') return this.identifier(expr, reference.name);
    if (reference?.kind === 'type') return constant(typeValue(reference.type));
    const slotted = this.slotField(expr.testOnly ? { ...expr, testOnly: false } : expr);
    if (slotted !== undefined && expr.testOnly) {
      return slotTestNode(this.slotTest(slotted, SlotTestOperation.Has, undefined));
    }
    if (slotted !== undefined && slotted.type.kind === 'bool') {
      return slotTestNode(this.slotTest(slotted, SlotTestOperation.IsTrue, undefined));
    }
    const operand = this.compileNode(expr.operand);
    const operandType = this.typeOf(expr.operand);
    const field = expr.field;
    const evaluateOperand = operand.evaluate;
    if (expr.testOnly) {
      return dynamic((activation, services) => {
        const target = evaluateOperand(activation, services);
        if (target instanceof CelError) return target;
        if (target instanceof CelMap) return target.has(field);
        if (isPlainObject(target)) return target[field] !== undefined && Object.hasOwn(target, field);
        return NO_SUCH_OVERLOAD;
      });
    }
    const missing = new CelError(`no such key: ${field}`);
    if (operandType.kind === 'object') {
      const fieldType = operandType.fields.get(field) ?? DYN;
      return dynamic(this.objectField(expr, hostKind(fieldType)));
    }
    return dynamic((activation, services) => {
      const target = evaluateOperand(activation, services);
      if (target instanceof CelError) return target;
      if (!isMap(target))
        return new CelError(`type '${typeNameOf(target)}' does not support field selection`);
      const value = mapGet(target, field);
      return value === undefined ? missing : value;
    });
  }

  /** The name of the declared variable an expression reads, when it is a plain top-level identifier. */
  private rootVariable(expr: Expr): string | undefined {
    if (expr.kind !== 'ident' || this.scope.some((entry) => entry.name === expr.name)) return undefined;
    const reference = this.reference(expr);
    if (reference?.kind !== 'variable') return undefined;
    return this.environment.variables.get(reference.name)?.kind === 'object' ? reference.name : undefined;
  }

  /** Reads a field of a message-like object (`event.amount`), checking the host value's shape. */
  private objectField(expr: SelectExpr, kind: HostKind): Evaluator {
    const field = expr.field;
    const missing = new CelError(`no such key: ${field}`);
    const fieldType = (this.typeOf(expr.operand) as ObjectType).fields.get(field) ?? DYN;
    const wrongType = new CelError(`field '${field}' is not a ${formatType(fieldType)}`);
    const root = this.rootVariable(expr.operand);
    if (root !== undefined && this.fieldSlots !== undefined) {
      const values = this.fieldSlots.values;
      const slot = this.fieldSlots.slot(root, field);
      return () => {
        const value = values[slot];
        return value === undefined ? missing : readHostValue(kind, value, wrongType);
      };
    }
    if (root !== undefined) {
      // `event.field`: one read of the activation, no intermediate closure.
      const missingRoot = new CelError(`undeclared reference to '${root}' (no value in the activation)`);
      return (activation) => {
        const target = activation[root] as Record<string, unknown> | undefined;
        if (target === undefined) return missingRoot;
        const value = target[field];
        return value === undefined ? missing : readHostValue(kind, value, wrongType);
      };
    }
    const evaluateOperand = this.compileNode(expr.operand).evaluate;
    return (activation, services) => {
      const target = evaluateOperand(activation, services) as Record<string, unknown>;
      if (target instanceof CelError) return target;
      const value = target[field];
      return value === undefined ? missing : readHostValue(kind, value, wrongType);
    };
  }

  /** When `expr` reads `root.field` from filled slots: where, and its errors. */
  private slotField(expr: Expr): SlotField | undefined {
    if (expr.kind === 'ident') return this.localSlotField(expr.name, this.typeOf(expr));
    if (this.fieldSlots === undefined || expr.kind !== 'select' || expr.testOnly) return undefined;
    if (this.reference(expr) !== undefined) return undefined;
    const root = this.rootVariable(expr.operand);
    if (root === undefined) return undefined;
    const fieldType = (this.typeOf(expr.operand) as ObjectType).fields.get(expr.field) ?? DYN;
    return {
      values: this.fieldSlots.values,
      slot: this.fieldSlots.slot(root, expr.field),
      type: fieldType,
      missing: new CelError(`no such key: ${expr.field}`),
      wrongType: new CelError(`field '${expr.field}' is not a ${formatType(fieldType)}`),
    };
  }

  /** A slot test on `field`, for the given operation and constant operand. */
  private slotTest(
    field: SlotField,
    operation: SlotTestOperation,
    operand: unknown,
    options: { toDouble?: boolean; set?: ReadonlySet<unknown> } = {},
  ): SlotTest {
    const kind =
      field.type.kind === 'string'
        ? SlotValueKind.String
        : field.type.kind === 'bool'
          ? SlotValueKind.Boolean
          : SlotValueKind.Number;
    return makeSlotTest(
      operation,
      field.values,
      field.slot,
      kind,
      operand,
      options.toDouble ?? false,
      options.set,
      field.missing,
      field.wrongType,
      [],
      undefined,
    );
  }

  /** A comprehension variable of a primitive type, read from the comprehension slots. */
  private localSlotField(name: string, type: CelType): SlotField | undefined {
    if (this.checked === undefined || !['string', 'bool', 'int', 'double'].includes(type.kind))
      return undefined;
    for (let index = this.scope.length - 1; index >= 0; index--) {
      const entry = this.scope[index] as { name: string; slot: number };
      if (entry.name !== name) continue;
      return {
        values: this.slots,
        slot: entry.slot,
        type,
        missing: new CelError(`no value for '${name}'`),
        wrongType: new CelError(`element '${name}' is not a ${formatType(type)}`),
      };
    }
    return undefined;
  }

  /** `field == constant`, `field != constant` and `field in [constants]` on slots, as slot tests. */
  private fusedSlotCall(name: string, argumentExprs: readonly Expr[]): Compiled | undefined {
    const [leftExpr, rightExpr] = argumentExprs as [Expr, Expr];
    const field = this.slotField(leftExpr);
    if (field === undefined || (field.type.kind !== 'string' && field.type.kind !== 'bool')) return undefined;
    const right = this.compileNode(rightExpr);
    if (!right.constant) return undefined;
    const kind = field.type.kind === 'string' ? 'string' : 'boolean';
    const y = right.value;
    if ((name === '_==_' || name === '_!=_') && typeof y === kind) {
      const operation = name === '_==_' ? SlotTestOperation.Equal : SlotTestOperation.NotEqual;
      return slotTestNode(this.slotTest(field, operation, y));
    }
    if (name === '@in' && Array.isArray(y) && y.every((element) => typeof element === kind)) {
      return slotTestNode(
        this.slotTest(field, SlotTestOperation.In, undefined, { set: new Set(y as unknown[]) }),
      );
    }
    return undefined;
  }

  /**
   * Compiles an int or double operand of a comparison. Int fields are left as the host gave them
   * (number or bigint): JavaScript compares the two exactly, so no bigint is allocated.
   */
  private numericOperand(expr: Expr, toDouble: boolean): Compiled {
    if (expr.kind === 'select' && !expr.testOnly && this.typeOf(expr.operand).kind === 'object') {
      const fieldType = (this.typeOf(expr.operand) as ObjectType).fields.get(expr.field);
      if (fieldType?.kind === 'int' && this.reference(expr) === undefined) {
        return dynamic(this.objectField(expr, HostKind.IntRaw));
      }
    }
    const compiled = this.compileNode(expr);
    if (compiled.constant && toDouble && typeof compiled.value === 'bigint')
      return constant(Number(compiled.value));
    return compiled;
  }

  private list(elements: Compiled[]): Compiled {
    if (elements.every((element) => element.constant)) {
      const values = elements.map((element) => element.value);
      const error = values.find((value) => value instanceof CelError);
      return constant(error ?? Object.freeze(values));
    }
    const evaluators = elements.map((element) => element.evaluate);
    return dynamic((activation, services) => {
      const result = new Array<unknown>(evaluators.length);
      for (let index = 0; index < evaluators.length; index++) {
        const value = (evaluators[index] as Evaluator)(activation, services);
        if (value instanceof CelError) return value;
        result[index] = value;
      }
      return result;
    });
  }

  private map(expr: MapExpr): Compiled {
    const keys = expr.entries.map((entry) => this.compileNode(entry.key));
    const values = expr.entries.map((entry) => this.compileNode(entry.value));
    const build = (activation: Activation, services: RuleServices): unknown => {
      const map = new CelMap();
      for (let index = 0; index < keys.length; index++) {
        const key = (keys[index] as Compiled).evaluate(activation, services);
        if (key instanceof CelError) return key;
        const value = (values[index] as Compiled).evaluate(activation, services);
        if (value instanceof CelError) return value;
        if (
          !(
            typeof key === 'string' ||
            typeof key === 'bigint' ||
            typeof key === 'boolean' ||
            key instanceof CelUint
          )
        ) {
          return new CelError(`unsupported key type: ${typeNameOf(key)}`);
        }
        if (!map.set(key, value))
          return new CelError(
            `Failed with repeated key: ${String(key instanceof CelUint ? key.value : key)}`,
          );
      }
      return map;
    };
    if (keys.every((key) => key.constant) && values.every((value) => value.constant)) {
      return constant(build({}, EMPTY_RULE_SERVICES));
    }
    return dynamic(build);
  }

  private comprehension(expr: ComprehensionExpr): Compiled {
    const range = this.compileNode(expr.range).evaluate;
    const slot = this.slots.length;
    this.slots.push(undefined);
    this.scope.push({ name: expr.iterVar, slot });
    const compiledPredicate = expr.predicate === undefined ? undefined : this.compileNode(expr.predicate);
    const predicate = compiledPredicate?.evaluate;
    const predicateTest = compiledPredicate?.test;
    const transform = expr.transform === undefined ? undefined : this.compileNode(expr.transform).evaluate;
    this.scope.pop();
    const slots = this.slots;
    // The cost estimate assumed this bound; a larger range at runtime is an error, so the
    // estimate stays an upper bound whatever the data.
    const maxSize = this.rangeSizes.get(expr.id) ?? this.environment.limits.maxListSize;
    const tooLarge = new CelError(`comprehension range is larger than the bound of ${maxSize} elements`);
    const items = (value: unknown): readonly unknown[] | CelError => {
      if (Array.isArray(value)) return value.length > maxSize ? tooLarge : value;
      if (value instanceof CelError) return value;
      if (isMap(value)) {
        const keys = mapKeys(value);
        return keys.length > maxSize ? tooLarge : keys;
      }
      return value instanceof CelError ? value : new CelError(`cannot iterate over ${typeNameOf(value)}`);
    };
    const rangeField = this.slotField(expr.range);
    if (
      (expr.macro === 'all' || expr.macro === 'exists') &&
      predicateTest !== undefined &&
      rangeField !== undefined &&
      rangeField.type.kind === 'list'
    ) {
      return slotTestNode(
        makeSlotTest(
          expr.macro === 'exists' ? SlotTestOperation.Exists : SlotTestOperation.All,
          rangeField.values,
          rangeField.slot,
          SlotValueKind.Number,
          maxSize,
          false,
          undefined,
          rangeField.missing,
          rangeField.wrongType,
          [predicateTest],
          undefined,
          slots,
          slot,
          tooLarge,
        ),
      );
    }
    const test = predicate as Evaluator;
    // Every iteration spends one unit of the CPU guard's credit (`evaluation-guard.ts`), so a
    // comprehension, nested or not, stops soon after its policy's budget is spent.
    switch (expr.macro) {
      case 'all':
      case 'exists': {
        const stop = expr.macro === 'exists';
        return dynamic((activation, services) => {
          const elements = items(range(activation, services));
          if (!Array.isArray(elements)) return elements;
          let error: CelError | undefined;
          for (let index = 0; index < elements.length; index++) {
            if (--guard.credit <= 0 && guard.check()) return guard.error;
            slots[slot] = elements[index];
            const result =
              predicateTest === undefined
                ? test(activation, services)
                : runSlotTest(predicateTest, activation, services);
            if (result === stop) return stop;
            if (result !== !stop) error ??= result instanceof CelError ? result : NO_SUCH_OVERLOAD;
          }
          return error ?? !stop;
        });
      }
      case 'exists_one':
        return dynamic((activation, services) => {
          const elements = items(range(activation, services));
          if (!Array.isArray(elements)) return elements;
          let count = 0;
          for (let index = 0; index < elements.length; index++) {
            if (--guard.credit <= 0 && guard.check()) return guard.error;
            slots[slot] = elements[index];
            const result =
              predicateTest === undefined
                ? test(activation, services)
                : runSlotTest(predicateTest, activation, services);
            if (result === true) count++;
            else if (result !== false) return result instanceof CelError ? result : NO_SUCH_OVERLOAD;
          }
          return count === 1;
        });
      case 'filter':
        return dynamic((activation, services) => {
          const elements = items(range(activation, services));
          if (!Array.isArray(elements)) return elements;
          const result: unknown[] = [];
          for (let index = 0; index < elements.length; index++) {
            if (--guard.credit <= 0 && guard.check()) return guard.error;
            const element = elements[index];
            slots[slot] = element;
            const keep =
              predicateTest === undefined
                ? test(activation, services)
                : runSlotTest(predicateTest, activation, services);
            if (keep === true) result.push(element);
            else if (keep !== false) return keep instanceof CelError ? keep : NO_SUCH_OVERLOAD;
          }
          return result;
        });
      default: {
        const map = transform as Evaluator;
        return dynamic((activation, services) => {
          const elements = items(range(activation, services));
          if (!Array.isArray(elements)) return elements;
          const result: unknown[] = [];
          for (let index = 0; index < elements.length; index++) {
            if (--guard.credit <= 0 && guard.check()) return guard.error;
            slots[slot] = elements[index];
            if (predicate !== undefined) {
              const keep = predicate(activation, services);
              if (keep === false) continue;
              if (keep !== true) return keep instanceof CelError ? keep : NO_SUCH_OVERLOAD;
            }
            const value = map(activation, services);
            if (value instanceof CelError) return value;
            result.push(value);
          }
          return result;
        });
      }
    }
  }

  private call(expr: CallExpr): Compiled {
    const argumentExprs = expr.target === undefined ? expr.args : [expr.target, ...expr.args];
    switch (expr.function) {
      case '_&&_':
      case '_||_':
        return this.logical(expr.function === '_&&_', argumentExprs);
      case '_?_:_':
        return this.conditional(argumentExprs);
      case '!_':
        return this.not(argumentExprs);
      default:
        break;
    }
    const argumentTypes = argumentExprs.map((argument) => this.typeOf(argument));
    if (expr.function === '_==_' || expr.function === '_!=_' || expr.function === '@in') {
      const fused = this.fusedSlotCall(expr.function, argumentExprs);
      if (fused !== undefined) return fused;
    }
    const stringTest = STRING_TESTS.get(expr.function);
    if (stringTest !== undefined && expr.target !== undefined && expr.args.length === 1) {
      const field = this.slotField(expr.target);
      if (field?.type.kind === 'string') {
        const argument = this.compileNode(expr.args[0] as Expr);
        if (argument.constant && typeof argument.value === 'string') {
          return slotTestNode(this.slotTest(field, stringTest, argument.value));
        }
      }
    }
    const relation = RELATIONS.get(expr.function);
    if (relation !== undefined) {
      const comparison = this.numericComparison(
        RELATION_OPERATIONS.get(expr.function) as SlotTestOperation,
        relation,
        argumentExprs,
        argumentTypes,
      );
      if (comparison !== undefined) return comparison;
    }
    const args = argumentExprs.map((argument) => this.compileNode(argument));
    const reference = this.reference(expr);
    let candidates: readonly OverloadDeclaration[];
    if (reference?.kind === 'overloads') {
      candidates = reference.overloads;
    } else {
      const declaration = this.environment.functions.get(expr.function.replace(/^\./, ''));
      const receiver = expr.target !== undefined;
      candidates = (declaration?.overloads ?? []).filter(
        (overload) => overload.receiver === receiver && overload.params.length === args.length,
      );
      if (candidates.length === 0) return constant(new CelError(`unbound function '${expr.function}'`));
    }
    const special = this.specialCall(expr.function, args, argumentTypes, candidates);
    const compiled = special ?? this.genericCall(args, argumentTypes, candidates);
    if (
      compiled.constant ||
      !args.every((argument) => argument.constant) ||
      candidates.some((overload) => overload.usesServices === true)
    ) {
      return compiled;
    }
    // Every argument is known: evaluate once now.
    return constant(compiled.evaluate({}, EMPTY_RULE_SERVICES));
  }

  private specialCall(
    name: string,
    args: Compiled[],
    types: CelType[],
    candidates: readonly OverloadDeclaration[],
  ): Compiled | undefined {
    const [left, right] = args as [Compiled, Compiled];
    const [leftType, rightType] = types as [CelType, CelType];
    if (name === '_==_' || name === '_!=_') {
      const negate = name === '_!=_';
      const a = left.evaluate;
      const b = right.evaluate;
      const simple =
        isConcrete(leftType) &&
        leftType.kind === rightType.kind &&
        ['string', 'bool', 'int', 'double', 'null_type'].includes(leftType.kind);
      if (simple && right.constant) {
        const y = right.value;
        return dynamic(
          negate
            ? (activation, services) => {
                const x = a(activation, services);
                return x instanceof CelError ? x : x !== y;
              }
            : (activation, services) => {
                const x = a(activation, services);
                return x instanceof CelError ? x : x === y;
              },
        );
      }
      if (simple) {
        return dynamic((activation, services) => {
          const x = a(activation, services);
          if (x instanceof CelError) return x;
          const y = b(activation, services);
          if (y instanceof CelError) return y;
          return (x === y) !== negate;
        });
      }
      return dynamic((activation, services) => {
        const x = a(activation, services);
        if (x instanceof CelError) return x;
        const y = b(activation, services);
        if (y instanceof CelError) return y;
        return celEquals(x, y) !== negate;
      });
    }
    if (
      name === '@in' &&
      right.constant &&
      Array.isArray(right.value) &&
      (leftType.kind === 'string' || leftType.kind === 'int')
    ) {
      // `x in ['a', 'b']`: a set lookup, since elements of the same primitive type compare by identity.
      const kind = leftType.kind === 'string' ? 'string' : 'bigint';
      if ((right.value as unknown[]).every((element) => typeof element === kind)) {
        const set = new Set(right.value as unknown[]);
        const a = left.evaluate;
        return dynamic((activation, services) => {
          const x = a(activation, services);
          return x instanceof CelError ? x : set.has(x);
        });
      }
    }
    if (
      (name === '@in' || name === '_[_]') &&
      !candidates.every(() => isConcrete(leftType) && isConcrete(rightType))
    ) {
      const operation = name === '@in' ? inValue : indexValue;
      const a = left.evaluate;
      const b = right.evaluate;
      return dynamic((activation, services) => {
        const x = a(activation, services);
        if (x instanceof CelError) return x;
        const y = b(activation, services);
        if (y instanceof CelError) return y;
        return operation(x, y);
      });
    }
    return undefined;
  }

  /** Double arithmetic on field slots and constants as data (see `slot-test.ts`), or undefined. */
  private doubleArithmetic(expr: Expr, depth = 0): SlotTest | undefined {
    if (depth > 16 || this.typeOf(expr).kind !== 'double') return undefined;
    if (expr.kind === 'literal' && typeof expr.value === 'number') {
      return makeSlotTest(
        SlotTestOperation.NumberConstant,
        [],
        0,
        SlotValueKind.Number,
        expr.value,
        true,
        undefined,
        NO_SUCH_OVERLOAD,
        NO_SUCH_OVERLOAD,
        [],
        undefined,
      );
    }
    const field = this.slotField(expr);
    if (field !== undefined) {
      return makeSlotTest(
        SlotTestOperation.NumberSlot,
        field.values,
        field.slot,
        SlotValueKind.Number,
        undefined,
        true,
        undefined,
        field.missing,
        field.wrongType,
        [],
        undefined,
      );
    }
    const operations: Record<string, SlotTestOperation> = {
      '_+_': SlotTestOperation.NumberAdd,
      '_-_': SlotTestOperation.NumberSubtract,
      '_*_': SlotTestOperation.NumberMultiply,
      '_/_': SlotTestOperation.NumberDivide,
    };
    if (expr.kind !== 'call' || expr.target !== undefined || expr.args.length !== 2) return undefined;
    const operation = operations[expr.function];
    if (operation === undefined) return undefined;
    const left = this.doubleArithmetic(expr.args[0] as Expr, depth + 1);
    const right = left === undefined ? undefined : this.doubleArithmetic(expr.args[1] as Expr, depth + 1);
    if (left === undefined || right === undefined) return undefined;
    return makeSlotTest(
      operation,
      [],
      0,
      SlotValueKind.Number,
      undefined,
      true,
      undefined,
      NO_SUCH_OVERLOAD,
      NO_SUCH_OVERLOAD,
      [left, right],
      undefined,
    );
  }

  /** `a < b` on ints and doubles, without allocating bigints for int fields. */
  private numericComparison(
    operation: SlotTestOperation,
    relation: (x: number | bigint, y: number | bigint) => boolean,
    argumentExprs: readonly Expr[],
    types: CelType[],
  ): Compiled | undefined {
    const [leftType, rightType] = types as [CelType, CelType];
    const numeric = (type: CelType): boolean => type.kind === 'int' || type.kind === 'double';
    if (this.checked === undefined || !numeric(leftType) || !numeric(rightType)) return undefined;
    const toDouble = leftType.kind === 'double' || rightType.kind === 'double';
    const [left, right] = argumentExprs.map((argument) => this.numericOperand(argument, toDouble)) as [
      Compiled,
      Compiled,
    ];
    if (left.constant && right.constant) return undefined;
    const asOperand = (compiled: Compiled): Compiled => {
      // A safe-integer constant compares faster as a number, and exactly.
      const value = compiled.value;
      return compiled.constant && typeof value === 'bigint' && value >= MIN_SAFE && value <= MAX_SAFE
        ? constant(Number(value))
        : compiled;
    };
    const a = asOperand(left);
    const b = asOperand(right);
    const evaluateLeft = a.evaluate;
    const evaluateRight = b.evaluate;
    // An int meets a double as a double (CEL); ints meet exactly (JavaScript compares bigint and number exactly).
    if (b.constant) {
      const y = b.value as number | bigint | CelError;
      if (y instanceof CelError) return constant(y);
      const field = this.slotField(argumentExprs[0] as Expr);
      if (field !== undefined) return slotTestNode(this.slotTest(field, operation, y, { toDouble }));
      return dynamic((activation, services) => {
        const x = evaluateLeft(activation, services) as number | bigint | CelError;
        if (typeof x === 'object') return x;
        return relation(toDouble && typeof x === 'bigint' ? Number(x) : x, y);
      });
    }
    const leftField = this.slotField(argumentExprs[0] as Expr);
    if (leftField !== undefined) {
      // `field < expression`: the field is read inline, the other side as double arithmetic on
      // slots and constants when it is one, else through its closure.
      const test = this.slotTest(leftField, SlotTestOperation.CompareToValue, operation, { toDouble });
      const arithmetic = toDouble ? this.doubleArithmetic(argumentExprs[1] as Expr) : undefined;
      return slotTestNode(
        makeSlotTest(
          test.operation,
          test.values,
          test.slot,
          test.kind,
          test.operand,
          test.toDouble,
          undefined,
          test.missing,
          test.wrongType,
          arithmetic === undefined ? [] : [arithmetic],
          arithmetic === undefined ? evaluateRight : undefined,
        ),
      );
    }
    return dynamic((activation, services) => {
      const x = evaluateLeft(activation, services) as number | bigint | CelError;
      if (typeof x === 'object') return x;
      const y = evaluateRight(activation, services) as number | bigint | CelError;
      if (typeof y === 'object') return y;
      return toDouble
        ? relation(typeof x === 'bigint' ? Number(x) : x, typeof y === 'bigint' ? Number(y) : y)
        : relation(x, y);
    });
  }

  private genericCall(
    args: Compiled[],
    types: CelType[],
    candidates: readonly OverloadDeclaration[],
  ): Compiled {
    const evaluators = args.map((argument) => argument.evaluate);
    const staticOverload =
      candidates.length === 1 && this.checked !== undefined && types.every(isConcrete)
        ? candidates[0]
        : undefined;
    if (staticOverload !== undefined) {
      const implementation = guarded(staticOverload);
      const [first, second] = args;
      if (args.length === 2 && first !== undefined && second?.constant === true && !first.constant) {
        // `x op constant`: no closure call for the constant.
        const a = first.evaluate;
        const y = second.value;
        return dynamic((activation, services) => {
          const x = a(activation, services);
          return x instanceof CelError ? x : implementation(x, y, services);
        });
      }
      return dynamic(directCall(implementation, evaluators));
    }
    const implementations = candidates.map(guarded);
    const parameterLists = candidates.map((overload) => overload.params);
    return dynamic((activation, services) => {
      const values = new Array<unknown>(evaluators.length);
      for (let index = 0; index < evaluators.length; index++) {
        const value = (evaluators[index] as Evaluator)(activation, services);
        if (value instanceof CelError) return value;
        values[index] = value;
      }
      for (let candidate = 0; candidate < implementations.length; candidate++) {
        const params = parameterLists[candidate] as readonly CelType[];
        let fits = true;
        for (let index = 0; index < values.length && fits; index++)
          fits = valueFits(values[index], params[index] as CelType);
        if (fits) return (implementations[candidate] as Implementation)(...values, services);
      }
      return NO_SUCH_OVERLOAD;
    });
  }

  private logical(isAnd: boolean, argumentExprs: readonly Expr[]): Compiled {
    // `a && b && c` is one node over [a, b, c], run as a slot test (see `slot-test.ts`).
    const name = isAnd ? '_&&_' : '_||_';
    const operands: Expr[] = [];
    const flatten = (expr: Expr): void => {
      if (expr.kind === 'call' && expr.function === name && expr.target === undefined)
        expr.args.forEach(flatten);
      else operands.push(expr);
    };
    argumentExprs.forEach(flatten);
    const compiled = operands.map((operand) => this.compileNode(operand));
    const node = slotTestNode(
      logicalNode(isAnd ? SlotTestOperation.And : SlotTestOperation.Or, compiled.map(asTest)),
    );
    if (compiled.every((operand) => operand.constant))
      return constant(node.evaluate({}, EMPTY_RULE_SERVICES));
    return node;
  }

  private conditional(argumentExprs: readonly Expr[]): Compiled {
    const [condition, whenTrue, whenFalse] = argumentExprs.map((argument) => this.compileNode(argument)) as [
      Compiled,
      Compiled,
      Compiled,
    ];
    if (condition.constant && typeof condition.value === 'boolean')
      return condition.value ? whenTrue : whenFalse;
    const test = condition.evaluate;
    const a = whenTrue.evaluate;
    const b = whenFalse.evaluate;
    return dynamic((activation, services) => {
      const value = test(activation, services);
      if (value === true) return a(activation, services);
      if (value === false) return b(activation, services);
      return value instanceof CelError ? value : NO_SUCH_OVERLOAD;
    });
  }

  private not(argumentExprs: readonly Expr[]): Compiled {
    const operand = this.compileNode(argumentExprs[0] as Expr);
    if (operand.test !== undefined) return slotTestNode(logicalNode(SlotTestOperation.Not, [operand.test]));
    const evaluateOperand = operand.evaluate;
    const evaluate: Evaluator = (activation, services) => {
      const value = evaluateOperand(activation, services);
      if (value === true) return false;
      if (value === false) return true;
      return value instanceof CelError ? value : NO_SUCH_OVERLOAD;
    };
    return operand.constant ? constant(evaluate({}, EMPTY_RULE_SERVICES)) : dynamic(evaluate);
  }
}

const TYPE_NAMES: ReadonlyMap<string, CelTypeValue> = new Map<string, CelTypeValue>([
  ...Object.values(TYPE_VALUES).map((value) => [value.name, value] as [string, CelTypeValue]),
]);

/** The runtime value of a type name (`int`, `list`, `google.protobuf.Timestamp`, ...). */
function typeValue(type: CelType): CelTypeValue {
  const name =
    type.kind === 'list'
      ? 'list'
      : type.kind === 'map'
        ? 'map'
        : type.kind === 'type'
          ? 'type'
          : formatType(type);
  return TYPE_NAMES.get(name) ?? new CelTypeValue(name);
}

function typeNameOf(value: unknown): string {
  if (value instanceof CelTypeValue) return 'type';
  if (value === null) return 'null_type';
  if (typeof value === 'bigint') return 'int';
  if (typeof value === 'number') return 'double';
  if (Array.isArray(value)) return 'list';
  if (value instanceof CelUint) return 'uint';
  return typeof value;
}
