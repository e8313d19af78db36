import { describe, expect, it } from 'vitest';
import { type Activation, compile } from './compiler.js';
import { createCelEnvironment } from './environment.js';
import { paymentActivation, paymentEnvironment } from './test-environment.js';
import { DYN, INT, listOf, mapOf, STRING } from './types.js';
import { CelError, CelUint } from './values.js';

const environment = paymentEnvironment();
const dynamicEnvironment = createCelEnvironment({
  variables: { x: INT, y: INT, attributes: mapOf(STRING, DYN), items: listOf(INT) },
});

function evaluate(text: string, activation: Activation = paymentActivation()): unknown {
  const result = compile(environment, text);
  if (!result.ok) throw new Error(result.errors.map((error) => error.formatted).join('\n'));
  return result.program.evaluate(activation);
}

function evaluateDynamic(text: string, activation: Activation = {}): unknown {
  const result = compile(dynamicEnvironment, text);
  if (!result.ok) throw new Error(result.errors.map((error) => error.formatted).join('\n'));
  return result.program.evaluate(activation);
}

function errorMessage(value: unknown): string {
  expect(value).toBeInstanceOf(CelError);
  return (value as CelError).message;
}

describe('evaluation', () => {
  it('evaluates rules against an activation', () => {
    expect(evaluate("event.amount > 100.0 && event.country in ['FR', 'DE']")).toBe(true);
    expect(evaluate('features.tx_count_1h > 5 || models.fraud_score > 0.1')).toBe(true);
    expect(evaluate('event.quantity * 2 == 4')).toBe(true);
    expect(evaluate("event.email.lowerAscii().endsWith('@example.com')")).toBe(true);
    expect(evaluate("event.tags.exists(tag, tag == 'web') && !event.tags.all(tag, tag == 'web')")).toBe(true);
    expect(evaluate("event.tags.filter(tag, tag.startsWith('re')).map(tag, size(tag))")).toEqual([9n]);
    expect(evaluate("event.tags.exists_one(tag, tag.contains('e'))")).toBe(false);
  });

  it('returns errors as values: division by zero, missing field, overflow', () => {
    expect(errorMessage(evaluateDynamic('x / y', { x: 1n, y: 0n }))).toBe('divide by zero');
    expect(errorMessage(evaluateDynamic('x % y', { x: 1n, y: 0n }))).toBe('modulus by zero');
    expect(errorMessage(evaluateDynamic('x + 1', { x: 9223372036854775807n }))).toBe('integer overflow');
    expect(errorMessage(evaluateDynamic('-x', { x: -9223372036854775808n }))).toBe('integer overflow');
    expect(errorMessage(evaluateDynamic('0u - 1u'))).toBe('unsigned integer overflow');
    expect(errorMessage(evaluateDynamic("attributes['missing']", { attributes: {} }))).toBe(
      'no such key: missing',
    );
    expect(errorMessage(evaluateDynamic('items[3]', { items: [1n] }))).toBe('index out of bounds: 3');
    const withoutEmail = paymentActivation();
    delete withoutEmail.event.email;
    expect(errorMessage(evaluate("event.email == 'a'", withoutEmail))).toBe('no such key: email');
    expect(evaluate('has(event.email)', withoutEmail)).toBe(false);
    expect(errorMessage(evaluateDynamic("int('12x')"))).toContain('cannot convert');
  });

  it('short-circuits && and || commutatively, and ?: on its condition', () => {
    const activation = { x: 1n, y: 0n };
    expect(evaluateDynamic('false && x / y == 1', activation)).toBe(false);
    expect(evaluateDynamic('x / y == 1 && false', activation)).toBe(false);
    expect(evaluateDynamic('true || x / y == 1', activation)).toBe(true);
    expect(evaluateDynamic('x / y == 1 || true', activation)).toBe(true);
    expect(errorMessage(evaluateDynamic('x / y == 1 && true', activation))).toBe('divide by zero');
    expect(errorMessage(evaluateDynamic('false || x / y == 1', activation))).toBe('divide by zero');
    expect(evaluateDynamic('x == 1 ? 10 : x / y', activation)).toBe(10n);
    expect(evaluateDynamic('[1, 2].exists(i, i / y == 0 || i == 2)', activation)).toBe(true);
    expect(evaluateDynamic('[0, 1].all(i, i == 5 && i / y == 0)', activation)).toBe(false);
    const missing = paymentActivation();
    delete missing.event.email;
    expect(evaluate("event.email == 'a' && event.amount < 0.0", missing)).toBe(false);
  });

  it('follows CEL numeric semantics', () => {
    expect(evaluateDynamic('7 / 2')).toBe(3n);
    expect(evaluateDynamic('-7 % 3')).toBe(-1n);
    expect(evaluateDynamic('7.0 / 2.0')).toBe(3.5);
    // Equality across numeric types needs dyn (as in cel-go); ordering across them does not.
    expect(evaluateDynamic('dyn(1) == 1.0 && dyn(1u) == 1 && 2 > 1.5 && 1u < 2')).toBe(true);
    expect(() => evaluateDynamic('1 == 1.0')).toThrow("found no matching overload for '_==_'");
    expect(evaluateDynamic('9223372036854775807 + 0')).toBe(9223372036854775807n);
    expect(evaluateDynamic('18446744073709551615u')).toEqual(new CelUint(18446744073709551615n));
    expect(evaluateDynamic('[1, 2] == [1, dyn(2.0)] && {"a": 1} == {"a": dyn(1u)}')).toBe(true);
    expect(evaluateDynamic("type(1) == int && type('a') == string && type(1u) == uint")).toBe(true);
    expect(evaluateDynamic('double("1e3") == 1000.0 && string(1.5) == "1.5" && int(-2.7) == -2')).toBe(true);
    expect(evaluateDynamic("2 in [1, 2] && 'a' in {'a': 1}")).toBe(true);
  });

  it('reads int fields given as numbers or bigints, and refuses values of the wrong type', () => {
    expect(evaluate('event.quantity == 2', paymentActivation({ quantity: 2n }))).toBe(true);
    expect(evaluate('event.quantity > 1', paymentActivation({ quantity: 2 }))).toBe(true);
    expect(errorMessage(evaluate('event.quantity > 1', paymentActivation({ quantity: 'two' })))).toBe(
      "field 'quantity' is not a int",
    );
    expect(errorMessage(evaluate("event.country == 'FR'", paymentActivation({ country: 7 })))).toBe(
      "field 'country' is not a string",
    );
  });

  it('handles timestamps, durations and time zones', () => {
    expect(evaluate("event.timestamp == timestamp('2024-03-10T12:30:00Z')")).toBe(true);
    expect(evaluate("event.timestamp - event.created_at == duration('30m')")).toBe(true);
    expect(evaluate('event.timestamp.getHours()')).toBe(12n);
    expect(evaluate("event.timestamp.getHours('Asia/Tokyo')")).toBe(21n);
    expect(evaluate("event.timestamp.getHours('-05:30')")).toBe(7n);
    expect(evaluate('event.timestamp.getDayOfWeek()')).toBe(0n);
    expect(evaluate("string(event.timestamp + duration('1.5s'))")).toBe('2024-03-10T12:30:01.5Z');
    expect(evaluate('int(event.timestamp)')).toBe(1710073800n);
    expect(evaluate("duration('1h30m').getMinutes()")).toBe(90n);
    expect(
      evaluate('event.created_at < event.timestamp', paymentActivation({ created_at: new Date(0) })),
    ).toBe(true);
    expect(errorMessage(evaluate("event.timestamp.getHours('Mars/Olympus')"))).toContain('unknown time zone');
  });

  it('matches regular expressions with RE2 semantics', () => {
    expect(evaluate("event.email.matches('(?i)^alice@')")).toBe(true);
    expect(evaluate("matches(event.country, '^[A-Z]{2}$')")).toBe(true);
    expect(errorMessage(evaluate("event.country.matches('(a')"))).toContain('invalid regular expression');
    // Backreferences are not RE2: refused, so no pattern can backtrack exponentially.
    expect(errorMessage(evaluate("event.country.matches('(a)\\\\1')"))).toContain(
      'invalid regular expression',
    );
    const hostile = `${'a'.repeat(5000)}!`;
    const started = performance.now();
    expect(evaluate("event.country.matches('^(a+)+$')", paymentActivation({ country: hostile }))).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('counts string sizes in code points', () => {
    expect(evaluate('size(event.country)', paymentActivation({ country: 'é🙂' }))).toBe(2n);
  });

  it('never passes user text to eval or Function', () => {
    const result = compile(environment, "event.country == 'x\\'); process.exit(1); //'");
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.program.evaluate(paymentActivation())).toBe(false);
  });
});
