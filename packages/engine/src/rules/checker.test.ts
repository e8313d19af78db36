import { describe, expect, it } from 'vitest';
import { check } from './checker.js';
import { compile } from './compiler.js';
import { createCelEnvironment } from './environment.js';
import { parse } from './parser.js';
import { paymentEnvironment } from './test-environment.js';
import { DYN, formatType, INT, mapOf, STRING } from './types.js';

const environment = paymentEnvironment();

function checkErrors(text: string, expectBoolean = true): string[] {
  const result = compile(environment, text, { expectBoolean });
  return result.ok ? [] : result.errors.map((error) => error.message);
}

describe('check', () => {
  it('accepts well-typed rules', () => {
    expect(checkErrors("event.amount > 100.0 && event.country in ['FR', 'DE']")).toEqual([]);
    expect(checkErrors('features.tx_count_1h >= 3 || models.fraud_score > 0.8')).toEqual([]);
    expect(checkErrors('event.amount > 100')).toEqual([]);
    expect(checkErrors("event.tags.exists(tag, tag.startsWith('promo'))")).toEqual([]);
    expect(checkErrors("event.timestamp - event.created_at > duration('1h')")).toEqual([]);
    expect(checkErrors('has(event.email) && size(event.email) > 3')).toEqual([]);
    expect(checkErrors("in_list('blocked_ips', event.ip)")).toEqual([]);
  });

  it('refuses unknown fields, features and models', () => {
    expect(checkErrors('event.nope == 1')).toEqual(["undefined field 'nope' on vigil.Event"]);
    expect(checkErrors('features.unknown > 1')).toEqual(["undefined field 'unknown' on vigil.Features"]);
    expect(checkErrors('models.other > 0.5')).toEqual(["undefined field 'other' on vigil.Models"]);
    expect(checkErrors('has(event.nope)')).toEqual(["undefined field 'nope' on vigil.Event"]);
    expect(checkErrors('unknown_var')).toEqual(["undeclared reference to 'unknown_var'"]);
  });

  it('refuses a rule that is not boolean', () => {
    expect(checkErrors('event.amount * 2.0')).toEqual(["expression must be bool, found 'double'"]);
    expect(checkErrors('event.amount * 2.0', false)).toEqual([]);
  });

  it('refuses operands whose types do not fit', () => {
    expect(checkErrors("event.amount > 'high'")).toEqual([
      "found no matching overload for '_>_' applied to '(double, string)'",
    ]);
    expect(checkErrors('event.quantity + 1.5 > 2.0')).toEqual([
      "found no matching overload for '_+_' applied to '(int, double)'",
    ]);
    expect(checkErrors('event.country.startsWith(1)')).toEqual([
      "found no matching overload for 'startsWith' applied to '(string, int)'",
    ]);
    expect(checkErrors('event.is_new_device && 1')).toHaveLength(1);
    expect(checkErrors('event.tags.all(tag, tag)')).toEqual(["all() predicate must be bool, found 'string'"]);
  });

  it('refuses unknown list names and malformed CIDR literals', () => {
    expect(checkErrors("in_list('nope', event.ip)")).toEqual(["unknown list 'nope'"]);
    expect(checkErrors("cidr_match(event.ip, '10.0.0.0/33')")).toEqual(["invalid CIDR '10.0.0.0/33'"]);
  });

  it('reports every check error with its position and caret', () => {
    const result = compile(environment, 'event.nope > 1 &&\n  features.gone > 2');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((error) => [error.line, error.column])).toEqual([
      [1, 6],
      [2, 11],
    ]);
    expect(result.errors[1]?.formatted).toBe(
      "ERROR: <input>:2:11: undefined field 'gone' on vigil.Features\n |   features.gone > 2\n | ..........^",
    );
  });

  it('types dyn map values and deduces list and map types', () => {
    const dynamicEnvironment = createCelEnvironment({ variables: { attributes: mapOf(STRING, DYN) } });
    const typeOf = (text: string): string => {
      const parsed = parse(text);
      const result = check(parsed, dynamicEnvironment);
      expect(result.errors).toEqual([]);
      return formatType(result.type);
    };
    expect(typeOf("attributes['score'] > 3")).toBe('bool');
    expect(typeOf('attributes.score')).toBe('dyn');
    expect(typeOf('[1, 2]')).toBe('list(int)');
    expect(typeOf("[1, 'a']")).toBe('list(dyn)');
    expect(typeOf("{'a': [1]}")).toBe('map(string, list(int))');
    expect(typeOf('[[], [[1]]]')).toBe('list(list(list(int)))');
    expect(typeOf('dyn(1) + 2')).toBe('int');
    expect(formatType(INT)).toBe('int');
  });
});
