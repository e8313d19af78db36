import { evaluationGuard as guard } from './evaluation-guard.js';
import { CelError } from './values.js';
import type { RuleServices } from './vigil-functions.js';

/**
 * The operations of a {@link SlotTest}. Plain numbers, not a TypeScript enum: with
 * `isolatedModules` an enum compiles to an object, and every `case Enum.Member` would be a property
 * load; {@link runSlotTest} switches on the literal values so V8 builds a jump table.
 */
export const SlotTestOperation = {
  Less: 0,
  LessOrEqual: 1,
  Greater: 2,
  GreaterOrEqual: 3,
  Equal: 4,
  NotEqual: 5,
  In: 6,
  StartsWith: 7,
  EndsWith: 8,
  Contains: 9,
  IsTrue: 10,
  Has: 11,
  And: 12,
  Or: 13,
  Not: 14,
  Evaluate: 15,
  Exists: 16,
  All: 17,
  /** Compares the slot with the value of `evaluate`; `operand` is the relation (`Less` ... `GreaterOrEqual`). */
  CompareToValue: 18,
  /** Double arithmetic kept as data, for the other side of `CompareToValue`: a slot's value. */
  NumberSlot: 19,
  /** A double constant (`operand`). */
  NumberConstant: 20,
  /** `children[0] + children[1]`, and so on, on doubles. */
  NumberAdd: 21,
  NumberSubtract: 22,
  NumberMultiply: 23,
  NumberDivide: 24,
} as const;

export type SlotTestOperation = (typeof SlotTestOperation)[keyof typeof SlotTestOperation];

/** The JavaScript type of a slot's values: 0 number (int or double), 1 string, 2 bool. */
export const SlotValueKind = { Number: 0, String: 1, Boolean: 2 } as const;

export type SlotValueKind = (typeof SlotValueKind)[keyof typeof SlotValueKind];

/** Runs a compiled closure (the same shape as the compiler's evaluators). */
export type TestEvaluator = (
  activation: Readonly<Record<string, unknown>>,
  services: RuleServices,
) => unknown;

/**
 * The boolean skeleton of a rule kept as data: simple conditions on one value slot
 * (`event.amount > 100.0`, `event.country == 'FR'`, `event.country in ['FR', 'DE']`,
 * `event.is_new_device`, `has(event.email)`), combined with `&&`, `||` and `!`, and closures for
 * everything else. {@link runSlotTest} runs it with direct calls to itself: calls through the
 * many compiled closures are megamorphic in V8 and cost more than the conditions themselves.
 * Every node has the same shape, so property reads stay monomorphic.
 */
export interface SlotTest {
  readonly operation: SlotTestOperation;
  readonly values: unknown[];
  readonly slot: number;
  /** The type of the slot's values: a number (int or double field), a string or a bool. */
  readonly kind: SlotValueKind;
  /** The constant operand: a number or bigint for comparisons, a string or bool for equality. */
  readonly operand: unknown;
  /** Convert a bigint value to double before comparing (an int compared with a double). */
  readonly toDouble: boolean;
  /** The constants of an `in` test. */
  readonly set: ReadonlySet<unknown> | undefined;
  readonly missing: CelError;
  readonly wrongType: CelError;
  /** Operands of `And`, `Or` and `Not`. */
  readonly children: readonly SlotTest[];
  /** The closure of an `Evaluate` node. */
  readonly evaluate: TestEvaluator | undefined;
  /** `Exists` and `All`: where the iteration variable is stored for the predicate (`children[0]`). */
  readonly localValues: unknown[];
  readonly localSlot: number;
  /** `Exists` and `All`: the error for a list over the size bound (the bound is `operand`). */
  readonly limitError: CelError;
}

const NO_SUCH_OVERLOAD = new CelError('no such overload');
const UNUSED = new CelError('unused');
const NO_VALUES: unknown[] = [];

/** A node that calls a closure. */
export function evaluateNode(evaluate: TestEvaluator): SlotTest {
  return logicalNode(SlotTestOperation.Evaluate, [], evaluate);
}

/** An `And`, `Or` or `Not` node. */
export function logicalNode(
  operation: SlotTestOperation,
  children: readonly SlotTest[],
  evaluate: TestEvaluator | undefined = undefined,
): SlotTest {
  return makeSlotTest(
    operation,
    NO_VALUES,
    0,
    SlotValueKind.Boolean,
    undefined,
    false,
    undefined,
    UNUSED,
    UNUSED,
    children,
    evaluate,
  );
}

/**
 * Creates a test. Every test is built here, so all share one hidden class and the property reads
 * in {@link runSlotTest} stay monomorphic.
 */
export function makeSlotTest(
  operation: SlotTestOperation,
  values: unknown[],
  slot: number,
  kind: SlotValueKind,
  operand: unknown,
  toDouble: boolean,
  set: ReadonlySet<unknown> | undefined,
  missing: CelError,
  wrongType: CelError,
  children: readonly SlotTest[],
  evaluate: TestEvaluator | undefined,
  localValues: unknown[] = NO_VALUES,
  localSlot = 0,
  limitError: CelError = UNUSED,
): SlotTest {
  return {
    operation,
    values,
    slot,
    kind,
    operand,
    toDouble,
    set,
    missing,
    wrongType,
    children,
    evaluate,
    localValues,
    localSlot,
    limitError,
  };
}

/**
 * Runs a leaf test (an operation below `And`). Not recursive and small, so V8 inlines it into
 * its callers, and the leaves of `&&` and `||` cost no call. Handles the common value types
 * first; anything else (a bigint, a missing or mistyped value, a bool field) goes the general way.
 */
export function runLeaf(test: SlotTest): unknown {
  const value = test.values[test.slot];
  switch (test.operation) {
    case 0: // Less
      return typeof value === 'number' ? value < (test.operand as number) : runLeafGeneric(test);
    case 1: // LessOrEqual
      return typeof value === 'number' ? value <= (test.operand as number) : runLeafGeneric(test);
    case 2: // Greater
      return typeof value === 'number' ? value > (test.operand as number) : runLeafGeneric(test);
    case 3: // GreaterOrEqual
      return typeof value === 'number' ? value >= (test.operand as number) : runLeafGeneric(test);
    case 4: // Equal
      return typeof value === 'string' && test.kind === 1 ? value === test.operand : runLeafGeneric(test);
    case 5: // NotEqual
      return typeof value === 'string' && test.kind === 1 ? value !== test.operand : runLeafGeneric(test);
    case 6: // In
      return typeof value === 'string' && test.kind === 1
        ? (test.set as ReadonlySet<unknown>).has(value)
        : runLeafGeneric(test);
    case 10: // IsTrue
      return typeof value === 'boolean' ? value : runLeafGeneric(test);
    case 11: // Has
      return value !== undefined;
    default:
      return runLeafGeneric(test);
  }
}

/** Runs any leaf test, whatever the slot holds: the general path of {@link runLeaf}. */
function runLeafGeneric(test: SlotTest): unknown {
  let value = test.values[test.slot];
  const operation = test.operation;
  if (operation === 11 /* Has */) return value !== undefined;
  const kind = test.kind;
  // `typeof` against literals compiles to type checks; against a loaded string it would not.
  const fits =
    kind === 0 /* Number */
      ? typeof value === 'number'
      : kind === 1 /* String */
        ? typeof value === 'string'
        : typeof value === 'boolean';
  if (!fits) {
    if (value === undefined) return test.missing;
    if (kind !== 0 /* Number */ || typeof value !== 'bigint') return test.wrongType;
    if (test.toDouble) value = Number(value);
  }
  const operand = test.operand as number;
  switch (operation) {
    case 0: // Less
      return (value as number) < operand;
    case 1: // LessOrEqual
      return (value as number) <= operand;
    case 2: // Greater
      return (value as number) > operand;
    case 3: // GreaterOrEqual
      return (value as number) >= operand;
    case 4: // Equal
      return value === operand;
    case 5: // NotEqual
      return value !== operand;
    case 6: // In
      return (test.set as ReadonlySet<unknown>).has(value);
    case 7: // StartsWith
      return (value as unknown as string).startsWith(operand as unknown as string);
    case 8: // EndsWith
      return (value as unknown as string).endsWith(operand as unknown as string);
    case 9: // Contains
      return (value as unknown as string).includes(operand as unknown as string);
    default:
      return value === true;
  }
}

/** Runs a test: true, false, an error value, or (for `Evaluate`) whatever the closure returns. */
export function runSlotTest(
  test: SlotTest,
  activation: Readonly<Record<string, unknown>>,
  services: RuleServices,
): unknown {
  const operation = test.operation;
  if (operation < 12 /* And */) return runLeaf(test);
  if (operation === 15 /* Evaluate */) return (test.evaluate as TestEvaluator)(activation, services);
  if (operation === 18 /* CompareToValue */) return runCompareToValue(test, activation, services);
  if (operation >= 16 /* Exists, All */) return runQuantifier(test, activation, services);
  if (operation === 14 /* Not */) {
    const value = runSlotTest(test.children[0] as SlotTest, activation, services);
    if (typeof value === 'boolean') return !value;
    return value instanceof CelError ? value : NO_SUCH_OVERLOAD;
  }
  return runJunction(test, activation, services);
}

/** Runs an operand of `&&` or `||`: leaves and closures directly, anything else through {@link runSlotTest}. */
function runChild(
  test: SlotTest,
  activation: Readonly<Record<string, unknown>>,
  services: RuleServices,
): unknown {
  const operation = test.operation;
  if (operation < 12 /* And */) return runLeaf(test);
  if (operation === 15 /* Evaluate */) return (test.evaluate as TestEvaluator)(activation, services);
  if (operation === 18 /* CompareToValue */) return runCompareToValue(test, activation, services);
  return runSlotTest(test, activation, services);
}

/**
 * `&&` and `||` over any number of operands, with CEL's commutative short-circuit: `false && error`
 * and `error && false` are both false. Two operands, the common case, are unrolled.
 */
export function runJunction(
  test: SlotTest,
  activation: Readonly<Record<string, unknown>>,
  services: RuleServices,
): unknown {
  const decisive = test.operation === 13; /* Or */
  const children = test.children;
  if (children.length === 2) {
    const first = children[0] as SlotTest;
    const x = runChild(first, activation, services);
    if (x === decisive) return decisive;
    const second = children[1] as SlotTest;
    const y = runChild(second, activation, services);
    if (y === decisive) return decisive;
    if (x === !decisive && y === !decisive) return !decisive;
    const failure = x === !decisive ? y : x;
    return failure instanceof CelError ? failure : NO_SUCH_OVERLOAD;
  }
  let failure: unknown;
  for (let index = 0; index < children.length; index++) {
    const child = children[index] as SlotTest;
    const value = runChild(child, activation, services);
    if (value === decisive) return decisive;
    if (value !== !decisive && failure === undefined) failure = value;
  }
  if (failure === undefined) return !decisive;
  return failure instanceof CelError ? failure : NO_SUCH_OVERLOAD;
}

/** `list.exists(x, p)` and `list.all(x, p)` over a list slot, with CEL's error rules. */
function runQuantifier(
  test: SlotTest,
  activation: Readonly<Record<string, unknown>>,
  services: RuleServices,
): unknown {
  const list = test.values[test.slot];
  if (!Array.isArray(list)) return list === undefined ? test.missing : test.wrongType;
  if (list.length > (test.operand as number)) return test.limitError;
  const stop = test.operation === 16; /* Exists */
  const predicate = test.children[0] as SlotTest;
  const isLeaf = predicate.operation < 12; /* And */
  const locals = test.localValues;
  const localSlot = test.localSlot;
  let failure: unknown;
  for (let index = 0; index < list.length; index++) {
    // One unit of the CPU guard's credit per iteration, as in the compiler's comprehensions.
    if (--guard.credit <= 0 && guard.check()) return guard.error;
    locals[localSlot] = list[index];
    const value = isLeaf ? runLeaf(predicate) : runSlotTest(predicate, activation, services);
    if (value === stop) return stop;
    if (value !== !stop && failure === undefined) failure = value;
  }
  if (failure === undefined) return !stop;
  return failure instanceof CelError ? failure : NO_SUCH_OVERLOAD;
}

/** `field < expression` (and `<=`, `>`, `>=`) on numbers. */
function runCompareToValue(
  test: SlotTest,
  activation: Readonly<Record<string, unknown>>,
  services: RuleServices,
): unknown {
  const slotValue = test.values[test.slot];
  if (typeof slotValue !== 'number' && typeof slotValue !== 'bigint') {
    return slotValue === undefined ? test.missing : test.wrongType;
  }
  const result =
    test.evaluate === undefined
      ? runNumber(test.children[0] as SlotTest)
      : test.evaluate(activation, services);
  if (typeof result !== 'number' && typeof result !== 'bigint') {
    return result instanceof CelError ? result : NO_SUCH_OVERLOAD;
  }
  let value: number | bigint = slotValue;
  let other: number | bigint = result;
  if (test.toDouble) {
    value = Number(value);
    other = Number(other);
  }
  // bigint and number compare exactly in JavaScript.
  switch (test.operand) {
    case 0: // Less
      return value < other;
    case 1: // LessOrEqual
      return value <= other;
    case 2: // Greater
      return value > other;
    default:
      return value >= other;
  }
}

/** Evaluates a double arithmetic node (`NumberSlot` ... `NumberDivide`): a number or an error value. */
function runNumber(node: SlotTest): unknown {
  switch (node.operation) {
    case 19: {
      // NumberSlot
      const value = node.values[node.slot];
      if (typeof value === 'number') return value;
      if (typeof value === 'bigint') return Number(value);
      return value === undefined ? node.missing : node.wrongType;
    }
    case 20: // NumberConstant
      return node.operand;
    default: {
      const left = numberOperand(node.children[0] as SlotTest);
      if (typeof left !== 'number') return left;
      const right = numberOperand(node.children[1] as SlotTest);
      if (typeof right !== 'number') return right;
      switch (node.operation) {
        case 21: // NumberAdd
          return left + right;
        case 22: // NumberSubtract
          return left - right;
        case 23: // NumberMultiply
          return left * right;
        default:
          return left / right;
      }
    }
  }
}

/** An operand of double arithmetic: slots and constants inline (this function is not recursive). */
function numberOperand(node: SlotTest): unknown {
  const operation = node.operation;
  if (operation === 20 /* NumberConstant */) return node.operand;
  if (operation === 19 /* NumberSlot */) {
    const value = node.values[node.slot];
    if (typeof value === 'number') return value;
    if (typeof value === 'bigint') return Number(value);
    return value === undefined ? node.missing : node.wrongType;
  }
  return runNumber(node);
}
