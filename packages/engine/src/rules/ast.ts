/**
 * The abstract syntax tree of a CEL expression. Operators are calls with CEL's operator names
 * (`_+_`, `_&&_`, `!_`, `_[_]`, `@in` ...), as in the CEL specification, so the checker and the
 * compiler resolve operators and functions the same way. Macros are expanded into comprehension
 * nodes at parse time.
 */
export type Expr =
  | LiteralExpr
  | IdentExpr
  | SelectExpr
  | CallExpr
  | ListExpr
  | MapExpr
  | StructExpr
  | ComprehensionExpr
  | ErrorExpr;

interface NodeBase {
  /** Unique id inside one parsed expression; the checker keys its types by it. */
  readonly id: number;
  /** UTF-16 offset of the node's first character, for error positions. */
  readonly offset: number;
}

/** A literal value. `int` is a bigint, `uint` a bigint flagged by `literalType`, `bytes` a Uint8Array. */
export interface LiteralExpr extends NodeBase {
  readonly kind: 'literal';
  readonly literalType: 'int' | 'uint' | 'double' | 'string' | 'bytes' | 'bool' | 'null';
  readonly value: bigint | number | string | Uint8Array | boolean | null;
}

export interface IdentExpr extends NodeBase {
  readonly kind: 'ident';
  readonly name: string;
}

/** `operand.field`, or `has(operand.field)` when `testOnly`. */
export interface SelectExpr extends NodeBase {
  readonly kind: 'select';
  readonly operand: Expr;
  readonly field: string;
  readonly testOnly: boolean;
}

/** A global call `f(args)`, a receiver call `target.f(args)`, or an operator. */
export interface CallExpr extends NodeBase {
  readonly kind: 'call';
  readonly function: string;
  readonly target: Expr | undefined;
  readonly args: readonly Expr[];
}

export interface ListExpr extends NodeBase {
  readonly kind: 'list';
  readonly elements: readonly Expr[];
}

export interface MapEntry {
  readonly key: Expr;
  readonly value: Expr;
  readonly offset: number;
}

export interface MapExpr extends NodeBase {
  readonly kind: 'map';
  readonly entries: readonly MapEntry[];
}

/** A message construction `Name{field: value}`; parsed, then refused by the checker (no protobuf). */
export interface StructExpr extends NodeBase {
  readonly kind: 'struct';
  readonly typeName: string;
  readonly fields: readonly { readonly field: string; readonly value: Expr; readonly offset: number }[];
}

/** The comprehension macros. */
export type MacroName = 'all' | 'exists' | 'exists_one' | 'map' | 'filter';

/**
 * An expanded macro: `range.all(x, predicate)`, `range.exists(x, predicate)`,
 * `range.exists_one(x, predicate)`, `range.filter(x, predicate)`, `range.map(x, transform)` and
 * `range.map(x, predicate, transform)` (where `predicate` filters first).
 */
export interface ComprehensionExpr extends NodeBase {
  readonly kind: 'comprehension';
  readonly macro: MacroName;
  readonly iterVar: string;
  readonly range: Expr;
  readonly predicate: Expr | undefined;
  readonly transform: Expr | undefined;
}

/** Stands for a part of the text that did not parse, so parsing can go on and report more errors. */
export interface ErrorExpr extends NodeBase {
  readonly kind: 'error';
}
