import { describe, expect, it } from 'vitest';
import { checkShape, mayBreakShape } from './body-parsing.js';

const maxDepth = 8;
const shapeFails = (text: string) => {
  try {
    checkShape(JSON.parse(text), maxDepth);
    return false;
  } catch {
    return true;
  }
};

describe('mayBreakShape', () => {
  it('lets a plain event skip the walk', () => {
    const event = '{"type":"payment","id":"e1","fields":{"account_id":"a","tags":["x","y"],"n":1}}';
    expect(mayBreakShape(Buffer.from(event), maxDepth)).toBe(false);
    expect(shapeFails(event)).toBe(false);
  });

  it('sends every body the walk would refuse to the walk', () => {
    const hostile = [
      '{"__proto__":{}}',
      '{"a":{"constructor":1}}',
      '{"a":[{"prototype":1}]}',
      '{"\\u005f_proto__":1}',
      '{"constr\\u0075ctor":1}',
      `${'['.repeat(maxDepth + 1)}${']'.repeat(maxDepth + 1)}`,
      `{"a":${'{"b":'.repeat(maxDepth)}1${'}'.repeat(maxDepth)}}`,
    ];
    for (const text of hostile) {
      expect(shapeFails(text), text).toBe(true);
      expect(mayBreakShape(Buffer.from(text), maxDepth), text).toBe(true);
    }
  });

  it('never lets a body past that the walk refuses (random bodies)', () => {
    const keys = ['a', 'b', '__proto__', 'constructor', 'prototype', 'c\\u006fnstructor', 'x\\ny'];
    let seed = 20261125;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const build = (depth: number): string => {
      const kind = depth > 12 ? 3 : random(4);
      if (kind === 0)
        return `{${Array.from({ length: random(3) }, () => `"${keys[random(keys.length)]}":${build(depth + 1)}`).join(',')}}`;
      if (kind === 1) return `[${Array.from({ length: random(3) }, () => build(depth + 1)).join(',')}]`;
      if (kind === 2) return `"${keys[random(keys.length)]}"`;
      return String(random(100));
    };
    let refused = 0;
    let skipped = 0;
    for (let i = 0; i < 2000; i++) {
      const text = build(1);
      const scanned = mayBreakShape(Buffer.from(text), maxDepth);
      if (shapeFails(text)) {
        refused += 1;
        expect(scanned, text).toBe(true);
      } else if (!scanned) skipped += 1;
    }
    // The bodies exercise both sides: some the walk refuses, some the scan lets skip the walk.
    expect(refused).toBeGreaterThan(100);
    expect(skipped).toBeGreaterThan(100);
  });
});
