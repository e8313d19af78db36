import type { ComprehensionExpr, Expr, MacroName, MapEntry, StructExpr } from './ast.js';
import { type Token, tokenize } from './lexer.js';
import { type CelIssue, Source } from './source.js';

/** Limits that keep hostile input from exhausting the stack or the CPU. */
export interface ParseLimits {
  /** Longest accepted expression, in UTF-16 code units. Default 100 000. */
  readonly maxLength?: number;
  /** Deepest accepted nesting of the syntax tree. Default 250. */
  readonly maxDepth?: number;
  /** Parsing stops after this many errors. Default 100. */
  readonly maxErrors?: number;
}

/** The result of parsing: a tree (possibly with error nodes) and every error found. */
export interface ParseResult {
  readonly source: Source;
  readonly expr: Expr;
  readonly errors: readonly CelIssue[];
  /** The highest node id used; node ids are `1..maxId`. */
  readonly maxId: number;
}

const RESERVED = new Set([
  'as',
  'break',
  'const',
  'continue',
  'else',
  'for',
  'function',
  'if',
  'import',
  'let',
  'loop',
  'package',
  'namespace',
  'return',
  'var',
  'void',
  'while',
]);

const RELATION_OPERATORS: Record<string, string> = {
  '<': '_<_',
  '<=': '_<=_',
  '>': '_>_',
  '>=': '_>=_',
  '==': '_==_',
  '!=': '_!=_',
  in: '@in',
};

const BINARY_OPERATORS = new Set([
  '||',
  '&&',
  '<',
  '<=',
  '>',
  '>=',
  '==',
  '!=',
  '+',
  '-',
  '*',
  '/',
  '%',
  '?',
  ':',
]);

const INT64_MAX = 9223372036854775807n;
const UINT64_MAX = 18446744073709551615n;

class TooManyErrors extends Error {}

/**
 * Parses CEL text into a syntax tree. The parser does not stop at the first error: it reports every
 * error with its line, column and a caret line, and returns a tree with `error` nodes where text
 * did not parse.
 */
export function parse(text: string, limits: ParseLimits = {}): ParseResult {
  const source = new Source(text);
  const parser = new Parser(source, limits);
  return parser.run();
}

class Parser {
  private readonly source: Source;
  private readonly errors: CelIssue[] = [];
  private readonly errorOffsets = new Set<number>();
  private tokens: Token[] = [];
  private index = 0;
  private nextId = 0;
  private depth = 0;
  private readonly maxDepth: number;
  private readonly maxErrors: number;
  private readonly maxLength: number;

  constructor(source: Source, limits: ParseLimits) {
    this.source = source;
    this.maxDepth = limits.maxDepth ?? 250;
    this.maxErrors = limits.maxErrors ?? 100;
    this.maxLength = limits.maxLength ?? 100_000;
  }

  run(): ParseResult {
    const text = this.source.text;
    if (text.length > this.maxLength) {
      this.errors.push(
        this.source.issue(
          'parse',
          0,
          `expression is ${text.length} characters long, over the limit of ${this.maxLength}`,
        ),
      );
      return {
        source: this.source,
        expr: { kind: 'error', id: 1, offset: 0 },
        errors: this.errors,
        maxId: 1,
      };
    }
    let expr: Expr;
    try {
      this.tokens = tokenize(text, (offset, message) => this.error(offset, message));
      expr = this.expression();
      // Recovery: skip a stray token (and a binary operator after it), then parse on to find more errors.
      while (this.peek().kind !== 'eof') {
        const next = this.advance();
        this.error(next.offset, `Syntax error: extraneous input '${next.text}' expecting <EOF>`);
        if (this.peek().kind === 'punct' && BINARY_OPERATORS.has(this.peek().text)) this.advance();
        if (this.startsOperand()) this.expression();
      }
    } catch (caught) {
      if (!(caught instanceof TooManyErrors)) throw caught;
      expr = { kind: 'error', id: ++this.nextId, offset: 0 };
    }
    if (this.errors.length === 0) this.checkDepth(expr);
    this.errors.sort((left, right) => left.offset - right.offset);
    return { source: this.source, expr, errors: this.errors, maxId: this.nextId };
  }

  private error(offset: number, message: string): void {
    if (this.errorOffsets.has(offset)) return;
    this.errorOffsets.add(offset);
    this.errors.push(this.source.issue('parse', offset, message));
    if (this.errors.length >= this.maxErrors) throw new TooManyErrors();
  }

  /** Measures the tree's depth without recursion, so even a degenerate tree cannot overflow the stack. */
  private checkDepth(root: Expr): void {
    const stack: [Expr, number][] = [[root, 1]];
    while (stack.length > 0) {
      const [expr, depth] = stack.pop() as [Expr, number];
      if (depth > this.maxDepth) {
        this.error(expr.offset, `expression nesting exceeds the limit of ${this.maxDepth}`);
        return;
      }
      for (const child of children(expr)) stack.push([child, depth + 1]);
    }
  }

  private peek(): Token {
    return this.tokens[this.index] ?? (this.tokens[this.tokens.length - 1] as Token);
  }

  /** Whether the next token can begin an operand. */
  private startsOperand(): boolean {
    const token = this.peek();
    if (token.kind === 'eof') return false;
    if (token.kind !== 'punct') return true;
    return ['(', '[', '{', '.', '!', '-'].includes(token.text);
  }

  private peekAt(ahead: number): Token {
    return this.tokens[this.index + ahead] ?? (this.tokens[this.tokens.length - 1] as Token);
  }

  private advance(): Token {
    const token = this.peek();
    if (token.kind !== 'eof') this.index++;
    return token;
  }

  private isPunct(text: string): boolean {
    const token = this.peek();
    return token.kind === 'punct' && token.text === text;
  }

  private accept(text: string): boolean {
    if (this.isPunct(text)) {
      this.index++;
      return true;
    }
    return false;
  }

  private expect(text: string): void {
    if (this.accept(text)) return;
    const token = this.peek();
    const found = token.kind === 'eof' ? '<EOF>' : `'${token.text}'`;
    this.error(token.offset, `Syntax error: mismatched input ${found} expecting '${text}'`);
  }

  private id(): number {
    return ++this.nextId;
  }

  private call(offset: number, name: string, args: Expr[], target?: Expr): Expr {
    return { kind: 'call', id: this.id(), offset, function: name, target, args };
  }

  private errorNode(offset: number): Expr {
    return { kind: 'error', id: this.id(), offset };
  }

  private enter(offset: number): boolean {
    this.depth++;
    if (this.depth > this.maxDepth) {
      this.error(offset, `expression nesting exceeds the limit of ${this.maxDepth}`);
      throw new TooManyErrors();
    }
    return true;
  }

  // Expr = ConditionalOr ["?" ConditionalOr ":" Expr]
  private expression(): Expr {
    const start = this.peek().offset;
    this.enter(start);
    try {
      const condition = this.conditionalOr();
      if (!this.isPunct('?')) return condition;
      const operatorOffset = this.advance().offset;
      const whenTrue = this.conditionalOr();
      this.expect(':');
      const whenFalse = this.expression();
      return this.call(operatorOffset, '_?_:_', [condition, whenTrue, whenFalse]);
    } finally {
      this.depth--;
    }
  }

  private conditionalOr(): Expr {
    let left = this.conditionalAnd();
    while (this.isPunct('||')) {
      const offset = this.advance().offset;
      const right = this.conditionalAnd();
      left = this.call(offset, '_||_', [left, right]);
    }
    return left;
  }

  private conditionalAnd(): Expr {
    let left = this.relation();
    while (this.isPunct('&&')) {
      const offset = this.advance().offset;
      const right = this.relation();
      left = this.call(offset, '_&&_', [left, right]);
    }
    return left;
  }

  private relation(): Expr {
    let left = this.addition();
    for (;;) {
      const token = this.peek();
      const isOperator =
        (token.kind === 'punct' || (token.kind === 'ident' && token.text === 'in')) &&
        RELATION_OPERATORS[token.text];
      if (!isOperator) return left;
      this.advance();
      const right = this.addition();
      left = this.call(token.offset, RELATION_OPERATORS[token.text] as string, [left, right]);
    }
  }

  private addition(): Expr {
    let left = this.multiplication();
    while (this.isPunct('+') || this.isPunct('-')) {
      const token = this.advance();
      const right = this.multiplication();
      left = this.call(token.offset, token.text === '+' ? '_+_' : '_-_', [left, right]);
    }
    return left;
  }

  private multiplication(): Expr {
    let left = this.unary();
    while (this.isPunct('*') || this.isPunct('/') || this.isPunct('%')) {
      const token = this.advance();
      const right = this.unary();
      const name = token.text === '*' ? '_*_' : token.text === '/' ? '_/_' : '_%_';
      left = this.call(token.offset, name, [left, right]);
    }
    return left;
  }

  private unary(): Expr {
    const token = this.peek();
    if (token.kind === 'punct' && (token.text === '!' || token.text === '-')) {
      const operators: Token[] = [];
      while (this.isPunct(token.text)) operators.push(this.advance());
      // A minus directly before a number literal makes a negative literal, so that the most
      // negative int64 can be written.
      let operand: Expr;
      let remaining = operators.length;
      const next = this.peek();
      if (token.text === '-' && (next.kind === 'int' || next.kind === 'double') && !this.isMemberFollow(1)) {
        this.advance();
        remaining--;
        if (next.kind === 'int') {
          const value = -(next.value as bigint);
          if (value < -INT64_MAX - 1n) this.error(next.offset, 'invalid int literal');
          operand = { kind: 'literal', id: this.id(), offset: token.offset, literalType: 'int', value };
        } else {
          operand = {
            kind: 'literal',
            id: this.id(),
            offset: token.offset,
            literalType: 'double',
            value: -(next.value as number),
          };
        }
        operand = this.memberSuffix(operand);
      } else if (this.isPunct('!') || this.isPunct('-')) {
        this.enter(this.peek().offset);
        try {
          operand = this.unary();
        } finally {
          this.depth--;
        }
      } else {
        operand = this.member();
      }
      for (let index = remaining - 1; index >= 0; index--) {
        const operator = operators[index] as Token;
        operand = this.call(operator.offset, operator.text === '!' ? '!_' : '-_', [operand]);
      }
      return operand;
    }
    return this.member();
  }

  /** Whether the token `ahead` positions away starts a member suffix (`.`, `[`), binding tighter than unary minus. */
  private isMemberFollow(ahead: number): boolean {
    const token = this.peekAt(ahead);
    return token.kind === 'punct' && (token.text === '.' || token.text === '[');
  }

  private member(): Expr {
    return this.memberSuffix(this.primary());
  }

  private memberSuffix(start: Expr): Expr {
    let expr = start;
    for (;;) {
      if (this.isPunct('.')) {
        const dot = this.advance();
        const name = this.peek();
        if (name.kind !== 'ident' && name.kind !== 'quoted_ident') {
          this.error(name.offset, `Syntax error: no viable alternative at input '.${name.text}'`);
          return this.errorNode(dot.offset);
        }
        this.advance();
        if (name.kind === 'ident' && this.isPunct('(')) {
          const open = this.advance();
          const args = this.argumentList(')');
          expr = this.receiverCall(name, open.offset, expr, args);
          continue;
        }
        expr = {
          kind: 'select',
          id: this.id(),
          offset: dot.offset,
          operand: expr,
          field: name.text,
          testOnly: false,
        };
        continue;
      }
      if (this.isPunct('[')) {
        const open = this.advance();
        const index = this.expression();
        this.expect(']');
        expr = this.call(open.offset, '_[_]', [expr, index]);
        continue;
      }
      return expr;
    }
  }

  private argumentList(close: string): Expr[] {
    const args: Expr[] = [];
    if (this.accept(close)) return args;
    for (;;) {
      args.push(this.expression());
      if (this.accept(',')) {
        continue;
      }
      this.expect(close);
      return args;
    }
  }

  private receiverCall(name: Token, offset: number, target: Expr, args: Expr[]): Expr {
    const macro = name.text as MacroName;
    const isComprehension =
      ((macro === 'all' || macro === 'exists' || macro === 'exists_one' || macro === 'filter') &&
        args.length === 2) ||
      (macro === 'map' && (args.length === 2 || args.length === 3));
    if (!isComprehension) return this.call(name.offset, name.text, args, target);
    const variable = args[0] as Expr;
    if (variable.kind !== 'ident') {
      this.error(variable.offset, `${macro}() variable name must be a simple identifier`);
      return this.errorNode(offset);
    }
    const comprehension: ComprehensionExpr = {
      kind: 'comprehension',
      id: this.id(),
      offset: name.offset,
      macro,
      iterVar: variable.name,
      range: target,
      predicate: macro === 'map' ? (args.length === 3 ? args[1] : undefined) : args[1],
      transform: macro === 'map' ? args[args.length - 1] : undefined,
    };
    return comprehension;
  }

  private primary(): Expr {
    const token = this.peek();
    switch (token.kind) {
      case 'int': {
        this.advance();
        const value = token.value as bigint;
        if (value > INT64_MAX) this.error(token.offset, 'invalid int literal');
        return { kind: 'literal', id: this.id(), offset: token.offset, literalType: 'int', value };
      }
      case 'uint': {
        this.advance();
        const value = token.value as bigint;
        if (value > UINT64_MAX) this.error(token.offset, 'invalid uint literal');
        return { kind: 'literal', id: this.id(), offset: token.offset, literalType: 'uint', value };
      }
      case 'double':
        this.advance();
        return {
          kind: 'literal',
          id: this.id(),
          offset: token.offset,
          literalType: 'double',
          value: token.value as number,
        };
      case 'string':
        this.advance();
        return {
          kind: 'literal',
          id: this.id(),
          offset: token.offset,
          literalType: 'string',
          value: token.value as string,
        };
      case 'bytes':
        this.advance();
        return {
          kind: 'literal',
          id: this.id(),
          offset: token.offset,
          literalType: 'bytes',
          value: token.value as Uint8Array,
        };
      case 'ident':
        return this.identifierPrimary(false);
      case 'quoted_ident':
        this.advance();
        this.error(
          token.offset,
          `Syntax error: quoted identifier '${token.text}' is only allowed as a field name`,
        );
        return this.errorNode(token.offset);
      case 'eof':
        this.error(token.offset, "Syntax error: mismatched input '<EOF>' expecting an expression");
        return this.errorNode(token.offset);
      default:
        break;
    }
    switch (token.text) {
      case '.': {
        this.advance();
        if (this.peek().kind !== 'ident') {
          this.error(
            this.peek().offset,
            `Syntax error: no viable alternative at input '.${this.peek().text}'`,
          );
          return this.errorNode(token.offset);
        }
        return this.identifierPrimary(true);
      }
      case '(': {
        this.advance();
        const inner = this.expression();
        this.expect(')');
        return inner;
      }
      case '[': {
        this.advance();
        const elements = this.elementList(']');
        return { kind: 'list', id: this.id(), offset: token.offset, elements };
      }
      case '{': {
        this.advance();
        return { kind: 'map', id: this.id(), offset: token.offset, entries: this.mapEntries() };
      }
      default:
        this.error(token.offset, `Syntax error: mismatched input '${token.text}' expecting an expression`);
        // Leave closing brackets for the enclosing rule, so it can resynchronise; skip any other
        // stray token and parse the operand that follows it, if any.
        if ([')', ']', '}', ','].includes(token.text)) return this.errorNode(token.offset);
        this.advance();
        return this.startsOperand() ? this.unary() : this.errorNode(token.offset);
    }
  }

  private elementList(close: string): Expr[] {
    const elements: Expr[] = [];
    while (!this.accept(close)) {
      if (this.peek().kind === 'eof') {
        this.expect(close);
        break;
      }
      elements.push(this.expression());
      if (!this.accept(',')) {
        this.expect(close);
        break;
      }
    }
    return elements;
  }

  private mapEntries(): MapEntry[] {
    const entries: MapEntry[] = [];
    while (!this.accept('}')) {
      if (this.peek().kind === 'eof') {
        this.expect('}');
        break;
      }
      const key = this.expression();
      const colon = this.peek().offset;
      this.expect(':');
      const value = this.expression();
      entries.push({ key, value, offset: colon });
      if (!this.accept(',')) {
        this.expect('}');
        break;
      }
    }
    return entries;
  }

  private identifierPrimary(leadingDot: boolean): Expr {
    const token = this.advance();
    const name = token.text;
    if (name === 'true' || name === 'false') {
      return {
        kind: 'literal',
        id: this.id(),
        offset: token.offset,
        literalType: 'bool',
        value: name === 'true',
      };
    }
    if (name === 'null')
      return { kind: 'literal', id: this.id(), offset: token.offset, literalType: 'null', value: null };
    if (RESERVED.has(name) || name === 'in') {
      this.error(token.offset, `Syntax error: reserved identifier: ${name}`);
      return this.errorNode(token.offset);
    }
    const fullName = leadingDot ? `.${name}` : name;
    if (this.isPunct('(')) {
      this.advance();
      const args = this.argumentList(')');
      if (name === 'has' && !leadingDot) {
        const argument = args[0];
        if (args.length !== 1 || argument === undefined || argument.kind !== 'select') {
          this.error(token.offset, 'invalid argument to has() macro');
          return this.errorNode(token.offset);
        }
        return { ...argument, id: this.id(), testOnly: true };
      }
      return this.call(token.offset, fullName, args);
    }
    if (this.isPunct('{') && this.looksLikeStruct()) return this.struct(token, fullName);
    return { kind: 'ident', id: this.id(), offset: token.offset, name: fullName };
  }

  /** After `Name` and before `{`: a message construction starts `{}` or `{ident :`. */
  private looksLikeStruct(): boolean {
    const next = this.peekAt(1);
    const after = this.peekAt(2);
    if (next.kind === 'punct' && next.text === '}') return true;
    return (
      (next.kind === 'ident' || next.kind === 'quoted_ident') && after.kind === 'punct' && after.text === ':'
    );
  }

  private struct(token: Token, typeName: string): StructExpr {
    this.advance();
    const fields: { field: string; value: Expr; offset: number }[] = [];
    while (!this.accept('}')) {
      const name = this.advance();
      if (name.kind !== 'ident' && name.kind !== 'quoted_ident') {
        this.error(name.offset, `Syntax error: mismatched input '${name.text}' expecting a field name`);
        break;
      }
      this.expect(':');
      fields.push({ field: name.text, value: this.expression(), offset: name.offset });
      if (!this.accept(',')) {
        this.expect('}');
        break;
      }
    }
    return { kind: 'struct', id: this.id(), offset: token.offset, typeName, fields };
  }
}

/** The direct children of a node, in evaluation order. */
export function children(expr: Expr): Expr[] {
  switch (expr.kind) {
    case 'select':
      return [expr.operand];
    case 'call':
      return expr.target === undefined ? [...expr.args] : [expr.target, ...expr.args];
    case 'list':
      return [...expr.elements];
    case 'map':
      return expr.entries.flatMap((entry) => [entry.key, entry.value]);
    case 'struct':
      return expr.fields.map((field) => field.value);
    case 'comprehension': {
      const result = [expr.range];
      if (expr.predicate !== undefined) result.push(expr.predicate);
      if (expr.transform !== undefined) result.push(expr.transform);
      return result;
    }
    default:
      return [];
  }
}
