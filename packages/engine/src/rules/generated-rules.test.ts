import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { check } from './checker.js';
import { estimateCost } from './cost.js';
import { createEnvironment } from './environment.js';
import { assertGeneratedSource, generatedSource } from './generated-rules.js';
import { parse } from './parser.js';
import { compileRuleSet } from './rule-set.js';
import { CelError } from './values.js';

/*
 * Generated rule functions: the source holds none of the rule's text, what the generator does not
 * cover stays with the typed closures, and the values are the general compiler's. The full
 * differential run (every expression, every activation, generated and typed) is in
 * `typed-compiler.test.ts`.
 */

const environment = createEnvironment({
  event: {
    amount: 'number',
    count: 'integer',
    country: 'string',
    email: 'string',
    tags: 'string_list',
    valueOf: 'string',
    created_at: 'timestamp',
  },
  features: { n: 'int' },
  models: [],
  lists: ['blocked'],
});

function sourceOf(text: string): string | undefined {
  const parsed = parse(text, environment.limits.parse);
  const checked = check(parsed, environment);
  expect(checked.errors).toEqual([]);
  return generatedSource(parsed.expr, {
    environment,
    checked,
    rangeSizes: estimateCost(parsed.expr, checked, environment).rangeSizes,
  });
}

const outcome = (value: unknown): unknown => (value instanceof CelError ? { error: value.message } : value);

describe('generated rule functions', () => {
  it('hold none of the rule text: field names and literals travel as constants', () => {
    const hostile = "'); process.exit(1); ('";
    const rules = [
      `event.email == "${hostile}" || event.country in ['FR', "x\\u0027y"]`,
      "event.email.endsWith('@evil.com') && event.amount > 1000.0 && features.n * 3 > event.count",
      "size(event.tags) >= 3 && !event.tags.exists(c, c == event.country || c in ['KP'])",
      'double(int(event.amount)) == event.amount && int(event.amount) % 100 == 0',
    ];
    for (const text of rules) {
      const source = sourceOf(text);
      expect(source, text).toBeDefined();
      assertGeneratedSource(`const g = h.guard;\n${source}`);
      for (const word of [
        'email',
        'country',
        'amount',
        'tags',
        'count',
        'evil',
        'process',
        'FR',
        'KP',
        '1000',
      ]) {
        expect(source, text).not.toContain(word);
      }
    }
  });

  it('refuse source that is not the generator’s own', () => {
    expect(() => assertGeneratedSource('return t0;')).not.toThrow();
    expect(() => assertGeneratedSource("t0 = 'x';")).toThrow(/literal/);
    expect(() => assertGeneratedSource('t0 = process;')).toThrow(/identifier 'process'/);
    expect(() => assertGeneratedSource('t0 = `x`;')).toThrow(/unexpected character/);
    expect(() => assertGeneratedSource('t0 = \\u0065val;')).toThrow(/unexpected character/);
    expect(() => assertGeneratedSource('t0 = h.constructor;')).toThrow(/identifier 'constructor'/);
    expect(() => assertGeneratedSource('t0 = t1; // exit')).toThrow(/identifier 'exit'/);
  });

  it('leave what they do not cover to the typed closures', () => {
    expect(sourceOf("in_list('blocked', event.email)")).toBeUndefined();
    expect(sourceOf("event.created_at < timestamp('2030-01-01T00:00:00Z')")).toBeUndefined();
    expect(sourceOf('event.count < 9223372036854775807')).toBeUndefined();
    expect(sourceOf("event.tags.exists(t, ['a', 'b'].exists(u, u == t))")).toBeUndefined();
    expect(sourceOf("event.amount > 1.0 && event.country == 'FR'")).toBeDefined();
  });

  it('read only the event’s own field when its name is an Object.prototype member', () => {
    // As the typed closures (their slots hold the event's own fields): an absent `valueOf` is
    // missing, not the inherited method. (The general compiler reads the inherited one; rule sets
    // never use it for a field read.)
    const texts = ["event.valueOf == 'x'", 'has(event.valueOf)', "event.valueOf.startsWith('x')"];
    const rules = texts.map((when, index) => ({ id: String(index), when }));
    const generated = compileRuleSet(environment, rules);
    const typed = compileRuleSet(environment, rules, { generate: false });
    if (!generated.ok || !typed.ok) throw new Error('compile');
    const results: unknown[] = [];
    for (const event of [{}, { valueOf: 'x' }, { valueOf: 7 }]) {
      const activation = { event, features: {}, models: {} };
      generated.ruleSet.prepare(activation);
      typed.ruleSet.prepare(activation);
      texts.forEach((text, index) => {
        const value = outcome(generated.ruleSet.evaluateRule(index, activation));
        expect(value, `${text} on ${JSON.stringify(event)}`).toEqual(
          outcome(typed.ruleSet.evaluateRule(index, activation)),
        );
        results.push(value);
      });
    }
    expect(results.slice(0, 3)).toEqual([
      { error: 'no such key: valueOf' },
      false,
      { error: 'no such key: valueOf' },
    ]);
    expect(results.slice(3, 6)).toEqual([true, true, true]);
  });

  it('read a missing or non-object root as one without fields', () => {
    const compiled = compileRuleSet(environment, [{ id: 'n', when: 'features.n > 1 || event.amount > 1.0' }]);
    if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
    for (const activation of [{ event: null, features: 'x' }, {}]) {
      compiled.ruleSet.prepare(activation);
      expect(outcome(compiled.ruleSet.evaluateRule(0, activation))).toEqual({ error: 'no such key: n' });
    }
  });

  it('fall back to the typed closures in a process that forbids code generation', () => {
    // A real process with code generation from strings disabled: `Function` throws there.
    const ruleSet = fileURLToPath(new URL('../../dist/rules/rule-set.js', import.meta.url));
    const environmentModule = fileURLToPath(new URL('../../dist/rules/environment.js', import.meta.url));
    const script = `
      const { compileRuleSet } = await import(${JSON.stringify(ruleSet)});
      const { createEnvironment } = await import(${JSON.stringify(environmentModule)});
      const environment = createEnvironment({ event: { amount: 'number', country: 'string' }, features: {}, models: [], lists: [] });
      const compiled = compileRuleSet(environment, [{ id: 'r', when: "event.amount > 10.0 && event.country in ['FR']" }]);
      const results = [{ amount: 20, country: 'FR' }, { amount: 20, country: 'DE' }, {}].map((event) => {
        const activation = { event, features: {}, models: {} };
        compiled.ruleSet.prepare(activation);
        const value = compiled.ruleSet.evaluateRule(0, activation);
        return typeof value === 'boolean' ? value : value.message;
      });
      const activation = { event: { amount: 20, country: 'FR' }, features: {}, models: {} };
      compiled.ruleSet.prepare(activation);
      const all = [];
      results.push(compiled.ruleSet.runAll(activation, {}, all, false), ...all);
      let blocked = false;
      try { new Function('return 1'); } catch { blocked = true; }
      process.stdout.write(JSON.stringify({ blocked, results }));
    `;
    const output = execFileSync(
      process.execPath,
      ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(output)).toEqual({
      blocked: true,
      results: [true, false, 'no such key: amount', 1, true],
    });
  });
});
