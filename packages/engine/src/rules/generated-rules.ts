import type { CallExpr, ComprehensionExpr, Expr, SelectExpr } from './ast.js';
import type { CheckResult } from './checker.js';
import type { Environment } from './environment.js';
import { evaluationGuard } from './evaluation-guard.js';
import type { Evaluator } from './program.js';
import {
  bigDoubleToInt,
  bigIntOperation,
  compare,
  EXACT_DIVISION,
  failureOf,
  RELATIONS,
  type Relation,
  readDouble,
  readInt,
  STRING_TESTS,
  stringSize,
} from './typed-compiler.js';
import { type CelType, formatType, type ObjectType } from './types.js';
import { CelError } from './values.js';

/*
 * Rule conditions compiled to JavaScript functions (ADR 0009). The typed closures
 * (`typed-compiler.ts`) pay a closure call per node and read fields from slots filled for every
 * event; a generated function reads the event's fields where the rule uses them, as hand-written
 * code does, and V8 inlines the whole rule.
 *
 * User text never reaches `Function`. The source is built only from this file's own tokens:
 * operators, keywords, a fixed list of helper and method names, and local names made of one
 * letter and a counter. Every value that comes from a rule or a schema (field names, string and
 * number literals, error messages, sets) goes into a constants array that the generated function
 * receives as data and reads as `k0`, `k1`, ... `assertGeneratedSource` checks that before the
 * source is compiled, and refuses anything else.
 *
 * The semantics are those of the typed closures, themselves checked against the general compiler:
 * the same values and the same errors (`generated-rules.test.ts` runs every expression of the
 * typed compiler's test through all three). A rule using anything not covered here is not
 * generated; it runs as typed closures.
 */

type Kind = 'bool' | 'int' | 'double' | 'string' | 'list' | 'other';

/** One generated node: the local (or constant) holding its value or its `CelError`. */
interface GenNode {
  readonly kind: Kind;
  readonly ref: string;
  /** Set for literals: the value is known when compiling. */
  readonly constant: boolean;
  readonly value?: unknown;
  /** Set for a plain read of a field: where it is read from. */
  readonly field?: FieldAccess;
}

interface FieldAccess {
  /** The JavaScript expression of the raw value (`o0[k3]`, or a comprehension variable). */
  readonly raw: string;
  readonly missing: string;
  readonly wrongType: string;
}

/** What the generator needs: the checked rule and its environment. */
export interface GeneratorContext {
  readonly environment: Environment;
  readonly checked: CheckResult;
  /** Bounds of comprehension ranges from the cost estimate, by node id. */
  readonly rangeSizes: ReadonlyMap<number, number>;
}

/** Helpers the generated code calls, by the names it uses. */
const helpers = Object.freeze({
  failureOf,
  readDouble,
  readInt,
  stringSize,
  compare,
  bigIntOperation,
  bigDoubleToInt,
  guard: evaluationGuard,
  /** The object a root variable holds, or an empty one (a missing object has missing fields). */
  object: (value: unknown): Record<string, unknown> =>
    typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : EMPTY,
  /** A field whose name is also a property of every object (`toString`): only its own value. */
  own: (object: Record<string, unknown>, name: string): unknown =>
    Object.hasOwn(object, name) ? object[name] : undefined,
  isArray: Array.isArray,
  isSafeInteger: Number.isSafeInteger,
  trunc: Math.trunc,
  toNumber: Number,
  intOf: (value: number): unknown =>
    value > -EXACT_DIVISION && value < EXACT_DIVISION ? Math.trunc(value) + 0 : bigDoubleToInt(value),
  /** `+ - * / %` on two ints (numbers or bigints, never errors), exactly as the typed closures. */
  addInt: (x: number | bigint, y: number | bigint): unknown => {
    if (typeof x === 'number' && typeof y === 'number') {
      const result = x + y;
      if (result <= Number.MAX_SAFE_INTEGER && result >= Number.MIN_SAFE_INTEGER) return result;
    }
    return bigIntOperation('_+_', x, y);
  },
  subtractInt: (x: number | bigint, y: number | bigint): unknown => {
    if (typeof x === 'number' && typeof y === 'number') {
      const result = x - y;
      if (result <= Number.MAX_SAFE_INTEGER && result >= Number.MIN_SAFE_INTEGER) return result + 0;
    }
    return bigIntOperation('_-_', x, y);
  },
  multiplyInt: (x: number | bigint, y: number | bigint): unknown => {
    if (typeof x === 'number' && typeof y === 'number') {
      const result = x * y;
      if (result <= Number.MAX_SAFE_INTEGER && result >= Number.MIN_SAFE_INTEGER) return result + 0;
    }
    return bigIntOperation('_*_', x, y);
  },
  divideInt: (x: number | bigint, y: number | bigint): unknown => {
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
    return bigIntOperation('_/_', x, y);
  },
  moduloInt: (x: number | bigint, y: number | bigint): unknown => {
    if (typeof x === 'number' && typeof y === 'number' && y !== 0) return (x % y) + 0;
    return bigIntOperation('_%_', x, y);
  },
  negateInt: (x: number | bigint): unknown => (typeof x === 'number' ? -x + 0 : bigIntOperation('_-_', 0, x)),
});

const EMPTY: Record<string, unknown> = Object.freeze(Object.create(null) as Record<string, unknown>);

type HelperName = keyof typeof helpers;

/** Property names the generated code may use after a dot, besides the helpers. */
const MEMBER_NAMES = new Set<string>([
  ...Object.keys(helpers),
  'startsWith',
  'endsWith',
  'includes',
  'length',
  'has',
  'credit',
  'check',
  'error',
  'spend',
]);

const KEYWORDS = new Set([
  'const',
  'let',
  'if',
  'else',
  'for',
  'break',
  'return',
  'typeof',
  'instanceof',
  'undefined',
  'true',
  'false',
  'function',
  // The parameters and fixed locals of the generated functions.
  'k',
  'h',
  'a',
  's',
  'g',
  'E',
  'r',
  'p',
]);

/** The only string literals the source may contain: results of `typeof`. */
const TYPE_NAMES = new Set(["'number'", "'string'", "'boolean'", "'bigint'", "'object'"]);

/**
 * Throws unless `source` consists only of the generator's own tokens (see the comment at the top):
 * keywords, helper and method names, generated locals (`t12`, `k3`, `o0`, `v2`, `L4`), integer
 * counters, `typeof` names and operators. No user text can pass: it would need a quote, or an
 * identifier outside these sets.
 */
export function assertGeneratedSource(source: string): void {
  const token =
    /\s+|[A-Za-z_$][A-Za-z0-9_$]*|\d+|'[a-z]+'|===|!==|<=|>=|&&|\|\||\+\+|--|-=|\+=|[-+*/%<>=!?:;,.(){}[\]]/y;
  let previous = '';
  for (let offset = 0; offset < source.length; ) {
    token.lastIndex = offset;
    const match = token.exec(source);
    if (match === null) throw new Error(`generated rule source: unexpected character at ${offset}`);
    const text = match[0];
    offset += text.length;
    if (/^\s/.test(text)) continue;
    if (/^[A-Za-z_$]/.test(text)) {
      const allowed =
        previous === '.' ? MEMBER_NAMES.has(text) : KEYWORDS.has(text) || /^[tkovL]\d+$/.test(text);
      if (!allowed) throw new Error(`generated rule source: identifier '${text}' is not the generator's`);
    } else if (text.startsWith("'") && !TYPE_NAMES.has(text)) {
      throw new Error(`generated rule source: literal ${text} is not the generator's`);
    }
    previous = text;
  }
}

/** Thrown while generating when the rule uses something not covered here. */
class NotGenerated extends Error {}

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

const JS_TYPE: Readonly<Record<string, string>> = {
  bool: "'boolean'",
  string: "'string'",
  int: "'number'",
  double: "'number'",
};

const OPERATOR: Readonly<Record<Relation, string>> = {
  '<': '<',
  '<=': '<=',
  '>': '>',
  '>=': '>=',
  '==': '===',
  '!=': '!==',
};

const INT_HELPERS: Readonly<Record<string, HelperName>> = {
  '_+_': 'addInt',
  '_-_': 'subtractInt',
  '_*_': 'multiplyInt',
  '_/_': 'divideInt',
  '_%_': 'moduloInt',
};

/** A literal's value as generated code uses it: ints as safe-integer numbers (others are not covered). */
function literalValue(value: unknown, literalType: string): unknown {
  switch (literalType) {
    case 'int': {
      const big = value as bigint;
      if (big < BigInt(Number.MIN_SAFE_INTEGER) || big > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new NotGenerated();
      }
      return Number(big);
    }
    case 'double':
    case 'string':
    case 'bool':
      return value;
    default:
      throw new NotGenerated();
  }
}

class Generator {
  private readonly constants: unknown[] = [];
  private readonly constantRefs = new Map<unknown, string>();
  private temps = 0;
  private labels = 0;
  private lines: string[] = [];
  /** Root variables read by the rule: their local, by name. */
  private readonly roots = new Map<string, string>();
  /** Comprehension variables in scope. */
  private readonly scope: { name: string; local: string; kind: Kind }[] = [];

  constructor(private readonly context: GeneratorContext) {}

  /** The function's source and its constants, or throws {@link NotGenerated}. */
  rule(expr: Expr): { source: string; constants: unknown[] } {
    const root = this.bool(this.node(expr));
    const body = this.lines;
    // Root reads first: they add the roots' names to the constants.
    const rootReads = [...this.roots].map(
      ([name, local]) => `const ${local} = h.object(a[${this.constant(name)}]);`,
    );
    const prologue = this.constants.map((_, index) => `const k${index} = k[${index}];`);
    const temps = Array.from({ length: this.temps }, (_, index) => `t${index}`);
    const source = [
      ...prologue,
      'return function (a, s) {',
      ...rootReads,
      ...(temps.length > 0 ? [`let ${temps.join(', ')};`] : []),
      ...body,
      `return ${root.ref};`,
      '};',
    ].join('\n');
    return { source, constants: this.constants };
  }

  private typeOf(expr: Expr): CelType | undefined {
    return this.context.checked.types.get(expr.id);
  }

  private constant(value: unknown): string {
    let ref = this.constantRefs.get(value);
    if (ref === undefined) {
      ref = `k${this.constants.length}`;
      this.constants.push(value);
      // Primitives are shared; objects (errors, sets) are not, and neither is -0, which a Map
      // would take for 0.
      if (typeof value !== 'object' && !Object.is(value, -0)) this.constantRefs.set(value, ref);
    }
    return ref;
  }

  private temp(): string {
    return `t${this.temps++}`;
  }

  private emit(line: string): void {
    this.lines.push(line);
  }

  /** Emits `build`'s lines inside `if (condition) { ... }`. */
  private block(head: string, build: () => void): void {
    this.emit(`${head} {`);
    build();
    this.emit('}');
  }

  private constantNode(kind: Kind, value: unknown): GenNode {
    return { kind, ref: this.constant(value), constant: true, value };
  }

  node(expr: Expr): GenNode {
    switch (expr.kind) {
      case 'literal':
        return this.literal(expr.value, expr.literalType);
      case 'ident':
        return this.local(expr.name);
      case 'select':
        return this.select(expr);
      case 'call':
        return this.call(expr);
      case 'comprehension':
        return this.comprehension(expr);
      default:
        throw new NotGenerated();
    }
  }

  private literal(value: unknown, literalType: string): GenNode {
    return this.constantNode(literalType as Kind, literalValue(value, literalType));
  }

  private local(name: string): GenNode {
    for (let index = this.scope.length - 1; index >= 0; index--) {
      const entry = this.scope[index] as { name: string; local: string; kind: Kind };
      if (entry.name !== name) continue;
      if (entry.kind === 'other' || entry.kind === 'list') throw new NotGenerated();
      return this.read(entry.kind, {
        raw: entry.local,
        missing: this.constant(new CelError(`no value for '${name}'`)),
        wrongType: this.constant(new CelError(`element '${name}' is not a ${entry.kind}`)),
      });
    }
    throw new NotGenerated();
  }

  /** The access to `root.field` when `expr` reads a field of a declared object variable. */
  private fieldOf(expr: SelectExpr): { access: FieldAccess; type: CelType } {
    const operand = expr.operand;
    if (operand.kind !== 'ident' || this.scope.some((entry) => entry.name === operand.name)) {
      throw new NotGenerated();
    }
    const references = this.context.checked.references;
    if (references.get(expr.id) !== undefined) throw new NotGenerated();
    const reference = references.get(operand.id);
    if (reference?.kind !== 'variable') throw new NotGenerated();
    if (this.context.environment.variables.get(reference.name)?.kind !== 'object') throw new NotGenerated();
    const fieldType = (this.typeOf(operand) as ObjectType | undefined)?.fields.get(expr.field);
    if (fieldType === undefined) throw new NotGenerated();
    let root = this.roots.get(reference.name);
    if (root === undefined) {
      root = `o${this.roots.size}`;
      this.roots.set(reference.name, root);
    }
    const name = this.constant(expr.field);
    return {
      type: fieldType,
      access: {
        raw: expr.field in Object.prototype ? `h.own(${root}, ${name})` : `${root}[${name}]`,
        missing: this.constant(new CelError(`no such key: ${expr.field}`)),
        wrongType: this.constant(new CelError(`field '${expr.field}' is not a ${formatType(fieldType)}`)),
      },
    };
  }

  private select(expr: SelectExpr): GenNode {
    const { access, type } = this.fieldOf(expr);
    if (expr.testOnly) {
      const result = this.temp();
      this.emit(`${result} = ${access.raw} !== undefined;`);
      return { kind: 'bool', ref: result, constant: false };
    }
    const kind = kindOf(type);
    if (kind === 'other') throw new NotGenerated();
    return this.read(kind, access);
  }

  /** A checked read of a field or comprehension variable of `kind`. */
  private read(kind: Kind, access: FieldAccess, rawInt = false): GenNode {
    const value = this.temp();
    const { missing, wrongType } = access;
    this.emit(`${value} = ${access.raw};`);
    const otherwise = `(${value} === undefined ? ${missing} : ${wrongType})`;
    switch (kind) {
      case 'bool':
      case 'string':
        this.emit(`if (typeof ${value} !== ${JS_TYPE[kind]}) ${value} = ${otherwise};`);
        break;
      case 'double':
        this.emit(
          `if (typeof ${value} !== 'number') ${value} = h.readDouble(${value}, ${missing}, ${wrongType});`,
        );
        break;
      case 'int':
        // Ordering relations take an int field as the host gave it (any number or bigint), as the
        // typed closures do; everything else needs a safe integer or a bigint.
        if (rawInt) {
          this.emit(
            `if (typeof ${value} !== 'number' && typeof ${value} !== 'bigint') ${value} = ${otherwise};`,
          );
        } else {
          this.emit(
            `if (!h.isSafeInteger(${value})) ${value} = h.readInt(${value}, ${missing}, ${wrongType});`,
          );
        }
        break;
      default:
        this.emit(`if (!h.isArray(${value})) ${value} = ${otherwise};`);
    }
    return { kind, ref: value, constant: false, field: access };
  }

  private call(expr: CallExpr): GenNode {
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
    if (reference?.kind !== 'overloads' || reference.overloads.length !== 1) throw new NotGenerated();
    const overload = (reference.overloads[0] as { id: string }).id;
    const kinds = args.map((argument) => kindOf(this.typeOf(argument)));
    const relation = RELATIONS.get(expr.function);
    if (relation !== undefined && args.length === 2) return this.relation(relation, args, kinds);
    if (expr.function === '@in' && args.length === 2) return this.inList(args as [Expr, Expr], kinds);
    const stringTest = STRING_TESTS.get(overload);
    if (stringTest !== undefined) return this.stringTest(stringTest, args as [Expr, Expr]);
    switch (overload) {
      case 'size_string':
      case 'string_size':
        return this.unary('int', args[0] as Expr, (x) => `h.stringSize(${x})`);
      case 'size_list':
      case 'list_size':
        return this.unary('int', args[0] as Expr, (x) => `${x}.length`);
      case 'int64_to_int64':
      case 'double_to_double':
        return this.node(args[0] as Expr);
      case 'double_to_int64':
        return this.unary('int', args[0] as Expr, (x) => `h.intOf(${x})`);
      case 'int64_to_double':
        return this.unary(
          'double',
          args[0] as Expr,
          (x) => `(typeof ${x} === 'number' ? ${x} : h.toNumber(${x}))`,
        );
      case 'negate_int64':
        return this.unary('int', args[0] as Expr, (x) => `h.negateInt(${x})`);
      case 'negate_double':
        return this.unary('double', args[0] as Expr, (x) => `-${x}`);
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
        throw new NotGenerated();
    }
  }

  /** A node whose value must be a bool: anything else is an error. */
  private bool(node: GenNode): GenNode {
    if (node.kind === 'bool') return node;
    const result = this.temp();
    this.emit(`${result} = typeof ${node.ref} === 'boolean' ? ${node.ref} : h.failureOf(${node.ref});`);
    return { kind: 'bool', ref: result, constant: false };
  }

  /** A unary operation on a value of a covered kind; `operation` gets a value, never an error. */
  private unary(kind: Kind, operandExpr: Expr, operation: (value: string) => string): GenNode {
    if (kindOf(this.typeOf(operandExpr)) === 'other') throw new NotGenerated();
    const operand = this.node(operandExpr);
    const x = operand.ref;
    const result = this.temp();
    // The operand holds a value of its kind or a `CelError`; only lists and errors are objects.
    const isValue = operand.kind === 'list' ? `h.isArray(${x})` : `typeof ${x} !== 'object'`;
    this.emit(`${result} = ${isValue} ? ${operation(x)} : ${x};`);
    return { kind, ref: result, constant: false };
  }

  /** `&&` / `||` with CEL's commutative short-circuit: decisive operand, else first error. */
  private logical(isOr: boolean, name: string, argumentExprs: readonly Expr[]): GenNode {
    const operands: Expr[] = [];
    const flatten = (expr: Expr): void => {
      if (expr.kind === 'call' && expr.function === name && expr.target === undefined)
        expr.args.forEach(flatten);
      else operands.push(expr);
    };
    argumentExprs.forEach(flatten);
    const decisive = String(isOr);
    const neutral = String(!isOr);
    const result = this.temp();
    const failure = this.temp();
    const label = `L${this.labels++}`;
    this.emit(`${failure} = undefined;`);
    this.block(`${label}:`, () => {
      for (const operand of operands) {
        const value = this.node(operand).ref;
        this.emit(`if (${value} === ${decisive}) { ${result} = ${decisive}; break ${label}; }`);
        this.emit(`if (${value} !== ${neutral} && ${failure} === undefined) ${failure} = ${value};`);
      }
      this.emit(`${result} = ${failure} === undefined ? ${neutral} : h.failureOf(${failure});`);
    });
    return { kind: 'bool', ref: result, constant: false };
  }

  private not(operandExpr: Expr): GenNode {
    const x = this.node(operandExpr).ref;
    const result = this.temp();
    this.emit(`${result} = ${x} === true ? false : ${x} === false ? true : h.failureOf(${x});`);
    return { kind: 'bool', ref: result, constant: false };
  }

  private conditional([conditionExpr, whenTrueExpr, whenFalseExpr]: [Expr, Expr, Expr]): GenNode {
    const condition = this.node(conditionExpr).ref;
    const trueKind = kindOf(this.typeOf(whenTrueExpr));
    const kind = trueKind === kindOf(this.typeOf(whenFalseExpr)) ? trueKind : 'other';
    const result = this.temp();
    this.block(`if (${condition} === true)`, () => {
      this.emit(`${result} = ${this.node(whenTrueExpr).ref};`);
    });
    this.block(`else if (${condition} === false)`, () => {
      this.emit(`${result} = ${this.node(whenFalseExpr).ref};`);
    });
    this.emit(`else ${result} = h.failureOf(${condition});`);
    return { kind, ref: result, constant: false };
  }

  /** `<`, `<=`, `>`, `>=`, `==`, `!=`, with the typed closures' modes (see `relation` there). */
  private relation(relation: Relation, argumentExprs: readonly Expr[], kinds: Kind[]): GenNode {
    const [leftKind, rightKind] = kinds as [Kind, Kind];
    const numeric = (kind: Kind): boolean => kind === 'int' || kind === 'double';
    const equality = relation === '==' || relation === '!=';
    let mode: 'int' | 'double' | 'identity';
    if (numeric(leftKind) && numeric(rightKind)) {
      if (equality && leftKind !== rightKind) throw new NotGenerated();
      mode = leftKind === 'int' && rightKind === 'int' ? 'int' : 'double';
    } else if (equality && leftKind === rightKind && (leftKind === 'string' || leftKind === 'bool')) {
      mode = 'identity';
    } else {
      throw new NotGenerated();
    }
    const left = this.comparand(argumentExprs[0] as Expr, !equality);
    const right = this.comparand(argumentExprs[1] as Expr, !equality);
    const result = this.temp();
    const x = left.ref;
    const y = right.ref;
    const type = mode === 'identity' ? JS_TYPE[leftKind] : "'number'";
    // The common case inline; errors, bigints and mixed representations in `slow`, which is the
    // typed closures' general path: the left error first, then the right one, then `compare`.
    const slow = `${x} instanceof E ? ${x} : ${y} instanceof E ? ${y} : h.compare(${this.constant(relation)}, ${this.constant(mode)}, ${x}, ${y})`;
    this.emit(
      `${result} = typeof ${x} === ${type} && typeof ${y} === ${type} ? ${x} ${OPERATOR[relation]} ${y} : ${slow};`,
    );
    return { kind: 'bool', ref: result, constant: false };
  }

  /**
   * An operand of a relation: an int field or comprehension variable is read raw for `<`, `<=`,
   * `>`, `>=` (any number or bigint), as the typed closures read it.
   */
  private comparand(expr: Expr, ordering: boolean): GenNode {
    if (!ordering || kindOf(this.typeOf(expr)) !== 'int') return this.node(expr);
    if (expr.kind === 'select' && !expr.testOnly) return this.read('int', this.fieldOf(expr).access, true);
    if (expr.kind === 'ident') {
      const local = this.node(expr);
      if (local.field !== undefined) {
        // Read again, raw: the strict read just emitted is left unused.
        return this.read('int', local.field, true);
      }
      return local;
    }
    return this.node(expr);
  }

  /** `x in [constants]`: a set lookup, for strings, bools and ints. */
  private inList([leftExpr, rightExpr]: [Expr, Expr], kinds: Kind[]): GenNode {
    const kind = kinds[0] as Kind;
    if (kind !== 'string' && kind !== 'int' && kind !== 'bool') throw new NotGenerated();
    if (rightExpr.kind !== 'list') throw new NotGenerated();
    const elements: unknown[] = [];
    for (const element of rightExpr.elements) {
      if (element.kind !== 'literal') throw new NotGenerated();
      elements.push(literalValue(element.value, element.literalType));
    }
    const javascriptType = kind === 'string' ? 'string' : kind === 'bool' ? 'boolean' : 'number';
    if (!elements.every((element) => typeof element === javascriptType)) throw new NotGenerated();
    const set = this.constant(new Set(elements));
    const x = this.node(leftExpr).ref;
    const result = this.temp();
    if (kind === 'int') {
      this.emit(
        `${result} = typeof ${x} === 'number' ? ${set}.has(${x}) : typeof ${x} === 'bigint' ? false : h.failureOf(${x});`,
      );
    } else {
      // A string or a bool, else an error (`instanceof` would cost a call here).
      this.emit(`${result} = typeof ${x} !== 'object' ? ${set}.has(${x}) : ${x};`);
    }
    return { kind: 'bool', ref: result, constant: false };
  }

  /** `startsWith`, `endsWith`, `contains`; `contains` charges the CPU guard for its scan. */
  private stringTest(
    test: 'startsWith' | 'endsWith' | 'contains',
    [targetExpr, argumentExpr]: [Expr, Expr],
  ): GenNode {
    const x = this.node(targetExpr).ref;
    const result = this.temp();
    this.block(`if (typeof ${x} !== 'string')`, () => {
      this.emit(`${result} = h.failureOf(${x});`);
    });
    this.block('else', () => {
      const y = this.node(argumentExpr).ref;
      const call =
        test === 'contains'
          ? `(g.spend(${x}.length * 0.1) ? g.error : ${x}.includes(${y}))`
          : `${x}.${test}(${y})`;
      this.emit(`${result} = typeof ${y} === 'string' ? ${call} : h.failureOf(${y});`);
    });
    return { kind: 'bool', ref: result, constant: false };
  }

  /** `+`, `-`, `*`, `/`, `%` on ints: on numbers while exact, else on bigints. */
  private intArithmetic(name: string, [leftExpr, rightExpr]: [Expr, Expr]): GenNode {
    const helper = INT_HELPERS[name];
    if (helper === undefined) throw new NotGenerated();
    const x = this.node(leftExpr).ref;
    const result = this.temp();
    this.block(`if (typeof ${x} === 'object')`, () => {
      this.emit(`${result} = ${x};`);
    });
    this.block('else', () => {
      const y = this.node(rightExpr).ref;
      this.emit(`${result} = typeof ${y} === 'object' ? ${y} : h.${helper}(${x}, ${y});`);
    });
    return { kind: 'int', ref: result, constant: false };
  }

  /** `+`, `-`, `*`, `/` on doubles. */
  private doubleArithmetic(name: string, [leftExpr, rightExpr]: [Expr, Expr]): GenNode {
    const operator = { '_+_': '+', '_-_': '-', '_*_': '*', '_/_': '/' }[name];
    if (operator === undefined) throw new NotGenerated();
    const x = this.node(leftExpr).ref;
    const result = this.temp();
    this.block(`if (typeof ${x} !== 'number')`, () => {
      this.emit(`${result} = h.failureOf(${x});`);
    });
    this.block('else', () => {
      const y = this.node(rightExpr).ref;
      this.emit(`${result} = typeof ${y} === 'number' ? ${x} ${operator} ${y} : h.failureOf(${y});`);
    });
    return { kind: 'double', ref: result, constant: false };
  }

  /** `list.exists(x, p)` and `list.all(x, p)`, with the CPU guard's charge per iteration. */
  private comprehension(expr: ComprehensionExpr): GenNode {
    if ((expr.macro !== 'exists' && expr.macro !== 'all') || expr.predicate === undefined) {
      throw new NotGenerated();
    }
    const rangeType = this.typeOf(expr.range);
    if (rangeType?.kind !== 'list') throw new NotGenerated();
    const list = this.node(expr.range).ref;
    const maxSize = this.context.rangeSizes.get(expr.id) ?? this.context.environment.limits.maxListSize;
    const tooLarge = this.constant(
      new CelError(`comprehension range is larger than the bound of ${maxSize} elements`),
    );
    const stop = String(expr.macro === 'exists');
    const neutral = String(expr.macro !== 'exists');
    const result = this.temp();
    const failure = this.temp();
    const index = this.temp();
    const element = `v${this.scope.length}`;
    const label = `L${this.labels++}`;
    this.emit(`if (!h.isArray(${list})) ${result} = h.failureOf(${list});`);
    this.emit(`else if (${list}.length > ${this.constant(maxSize)}) ${result} = ${tooLarge};`);
    this.block('else', () => {
      this.emit(`${result} = ${neutral};`);
      this.emit(`${failure} = undefined;`);
      this.block(`${label}: for (${index} = 0; ${index} < ${list}.length; ${index}++)`, () => {
        // One unit of the CPU guard's credit per iteration, as in the other compilers.
        this.emit(`if (--g.credit <= 0 && g.check()) { ${result} = g.error; break ${label}; }`);
        this.emit(`const ${element} = ${list}[${index}];`);
        this.scope.push({ name: expr.iterVar, local: element, kind: kindOf(rangeType.element) });
        try {
          const value = this.node(expr.predicate as Expr).ref;
          this.emit(`if (${value} === ${stop}) { ${result} = ${stop}; break ${label}; }`);
          this.emit(`if (${value} !== ${neutral} && ${failure} === undefined) ${failure} = ${value};`);
        } finally {
          this.scope.pop();
        }
      });
      this.emit(
        `if (${result} === ${neutral} && ${failure} !== undefined) ${result} = h.failureOf(${failure});`,
      );
    });
    return { kind: 'bool', ref: result, constant: false };
  }
}

/** The factory `Function` builds from a generated source. */
type Factory = (constants: readonly unknown[], helpers: unknown, error: unknown) => Evaluator;

/** Whether this process allows code generation (`--disallow-code-generation-from-strings`). */
let codeGenerationAllowed: boolean | undefined;

/**
 * Generates a rule's condition as a JavaScript function, or returns undefined when the rule uses
 * something this generator does not cover, or the process forbids code generation.
 */
export function generateRule(expr: Expr, context: GeneratorContext): Evaluator | undefined {
  if (codeGenerationAllowed === false) return undefined;
  if (context.checked.types.get(expr.id)?.kind !== 'bool') return undefined;
  let generated: { source: string; constants: unknown[] };
  try {
    generated = new Generator(context).rule(expr);
  } catch (error) {
    if (error instanceof NotGenerated) return undefined;
    throw error;
  }
  const body = generated.source.replace(/^/, 'const g = h.guard;\n');
  assertGeneratedSource(body);
  let factory: Factory;
  try {
    // The source holds only the generator's tokens (checked just above); the rule's values come in
    // as `k`, data.
    factory = new Function('k', 'h', 'E', body) as Factory;
    codeGenerationAllowed = true;
  } catch (error) {
    if (error instanceof EvalError) {
      codeGenerationAllowed = false;
      return undefined;
    }
    throw error;
  }
  return factory(Object.freeze(generated.constants), helpers, CelError);
}

/** @internal The source a rule generates to (for tests and for reading). */
export function generatedSource(expr: Expr, context: GeneratorContext): string | undefined {
  try {
    return new Generator(context).rule(expr).source;
  } catch (error) {
    if (error instanceof NotGenerated) return undefined;
    throw error;
  }
}

/** Runs a rule set's rules in order (see `CompiledRuleSet.runAll`). */
export type RuleRunner = (
  activation: unknown,
  services: unknown,
  results: unknown[],
  stopAtHit: boolean,
) => number;

/**
 * The runner of a rule set: one generated function that calls each rule's evaluator from a call
 * site of its own, so each call is monomorphic and V8 can inline the rule, where a loop would call
 * every rule through one megamorphic site. Before each rule it charges the CPU guard one unit; a
 * rule not started because the guard tripped gets `notStarted`. Undefined when the process forbids
 * code generation.
 */
export function generateRunner(
  evaluators: readonly Evaluator[],
  notStarted: unknown,
): RuleRunner | undefined {
  if (codeGenerationAllowed === false) return undefined;
  const count = evaluators.length;
  const lines = ['const g = h.guard;'];
  for (let index = 0; index <= count; index++) lines.push(`const k${index} = k[${index}];`);
  lines.push('return function (a, s, r, p) {');
  for (let index = 0; index < count; index++) {
    // `g.spend(1)`, written out: the runner is too large for V8 to inline a call per rule.
    lines.push(`if ((g.credit -= 1) <= 0 && g.check()) r[${index}] = k${count};`);
    lines.push(`else { r[${index}] = k${index}(a, s); if (p && r[${index}] === true) return ${index + 1}; }`);
  }
  lines.push(`return ${count};`, '};');
  const body = lines.join('\n');
  assertGeneratedSource(body);
  try {
    const factory = new Function('k', 'h', 'E', body) as (
      constants: readonly unknown[],
      helpers: unknown,
      error: unknown,
    ) => RuleRunner;
    codeGenerationAllowed = true;
    return factory(Object.freeze([...evaluators, notStarted]), helpers, CelError);
  } catch (error) {
    if (error instanceof EvalError) {
      codeGenerationAllowed = false;
      return undefined;
    }
    throw error;
  }
}
