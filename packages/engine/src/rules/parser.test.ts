import { describe, expect, it } from 'vitest';
import type { CallExpr, ComprehensionExpr, LiteralExpr, SelectExpr } from './ast.js';
import { parse } from './parser.js';

function literal(text: string): LiteralExpr {
  const result = parse(text);
  expect(result.errors).toEqual([]);
  expect(result.expr.kind).toBe('literal');
  return result.expr as LiteralExpr;
}

describe('parse', () => {
  it('parses literals of every kind', () => {
    expect(literal('42').value).toBe(42n);
    expect(literal('0x1F').value).toBe(31n);
    expect(literal('7u')).toMatchObject({ literalType: 'uint', value: 7n });
    expect(literal('18446744073709551615u').value).toBe(18446744073709551615n);
    expect(literal('-9223372036854775808').value).toBe(-9223372036854775808n);
    expect(literal('1.5e3')).toMatchObject({ literalType: 'double', value: 1500 });
    expect(literal('.5').value).toBe(0.5);
    expect(literal('true').value).toBe(true);
    expect(literal('null').literalType).toBe('null');
  });

  it('decodes every string form', () => {
    expect(literal(String.raw`"a\tb\n\u00e9\x41\101"`).value).toBe('a\tb\né\u0041A');
    expect(literal(String.raw`r"\d+\n"`).value).toBe(String.raw`\d+\n`);
    expect(literal(`'''multi\nline'''`).value).toBe('multi\nline');
    expect(literal(`"""say "hi" """`).value).toBe('say "hi" ');
    expect(literal(String.raw`'\''`).value).toBe("'");
    expect([...(literal(String.raw`b"\xff\000é"`).value as Uint8Array)]).toEqual([0xff, 0, 0xc3, 0xa9]);
  });

  it('expands macros into comprehensions and has() into a test-only select', () => {
    const exists = parse('[1, 2].exists(x, x > 1)').expr as ComprehensionExpr;
    expect(exists).toMatchObject({ kind: 'comprehension', macro: 'exists', iterVar: 'x' });
    const map = parse('[1, 2].map(x, x > 1, x * 2)').expr as ComprehensionExpr;
    expect(map.predicate).toBeDefined();
    expect(map.transform).toBeDefined();
    const has = parse('has(event.email)').expr as SelectExpr;
    expect(has).toMatchObject({ kind: 'select', field: 'email', testOnly: true });
  });

  it('follows CEL precedence', () => {
    const expr = parse('a || b && c == d + e * f').expr as CallExpr;
    expect(expr.function).toBe('_||_');
    const and = expr.args[1] as CallExpr;
    expect(and.function).toBe('_&&_');
    expect((and.args[1] as CallExpr).function).toBe('_==_');
    const ternary = parse('a ? b : c ? d : e').expr as CallExpr;
    expect(ternary.function).toBe('_?_:_');
    expect((ternary.args[2] as CallExpr).function).toBe('_?_:_');
    expect((parse('x in [1]').expr as CallExpr).function).toBe('@in');
  });

  it('reports a syntax error with line, column and a caret under it', () => {
    const result = parse('event.amount >\n  > 10');
    expect(result.errors).toHaveLength(1);
    const [error] = result.errors;
    expect(error).toMatchObject({ stage: 'parse', line: 2, column: 3 });
    expect(error?.formatted).toBe(
      "ERROR: <input>:2:3: Syntax error: mismatched input '>' expecting an expression\n |   > 10\n | ..^",
    );
  });

  it('recovers and reports every error', () => {
    const result = parse('a + ) && b ] || "open');
    expect(result.errors.length).toBeGreaterThanOrEqual(3);
    const columns = result.errors.map((error) => error.column);
    expect(new Set(columns).size).toBe(columns.length);
    expect(result.errors.some((error) => error.message.includes('unterminated string'))).toBe(true);
  });

  it('hints at the operator meant', () => {
    expect(parse("event.country = 'FR'").errors[0]?.message).toBe(
      "Syntax error: token recognition error at: '='; did you mean '=='?",
    );
    expect(parse('a & b').errors[0]?.message).toContain("did you mean '&&'?");
  });

  it('refuses reserved words, bad escapes and out-of-range literals', () => {
    expect(parse('while').errors[0]?.message).toContain('reserved identifier');
    expect(parse(String.raw`"\q"`).errors[0]?.message).toContain('invalid escape');
    expect(parse('9223372036854775808').errors[0]?.message).toBe('invalid int literal');
    expect(parse('18446744073709551616u').errors[0]?.message).toBe('invalid uint literal');
    expect(parse(String.raw`b"\u00e9"`).errors[0]?.message).toContain('unicode escapes');
  });

  it('limits nesting so hostile input cannot overflow the stack', () => {
    const deep = `${'('.repeat(5000)}1${')'.repeat(5000)}`;
    const result = parse(deep);
    expect(result.errors[0]?.message).toContain('nesting exceeds the limit of 250');
    const longChain = Array.from({ length: 300 }, () => 'a').join(' + ');
    expect(parse(longChain).errors[0]?.message).toContain('nesting exceeds');
    expect(parse('!'.repeat(100_000)).errors.length).toBeGreaterThan(0);
    expect(parse('x'.repeat(200_000)).errors[0]?.message).toContain('over the limit');
    expect(parse('1 + 1', { maxDepth: 1 }).errors.length).toBe(1);
  });

  it('counts columns in code points', () => {
    const result = parse("'é🙂' + )");
    expect(result.errors[0]).toMatchObject({ line: 1, column: 8 });
  });
});
