import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigSchema, loadConfig } from './config.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

function readmeTable(): Map<string, { fallback: string; meaning: string }> {
  const table = readme.split('<!-- config-table')[1]?.split('<!-- /config-table -->')[0] ?? '';
  const rows = new Map<string, { fallback: string; meaning: string }>();
  for (const line of table.split('\n')) {
    const match = /^\|\s*`([A-Z_]+)`\s*\|\s*(.+?)\s*\|\s*(.+?)\s*\|$/.exec(line);
    if (match !== null)
      rows.set(match[1] as string, { fallback: match[2] as string, meaning: match[3] as string });
  }
  return rows;
}

describe('configuration', () => {
  it('is documented in the README exactly as the schema defines it', () => {
    const rows = readmeTable();
    const properties = ConfigSchema.properties as Record<
      string,
      { default?: unknown; description?: string; 'x-unset'?: string }
    >;
    expect([...rows.keys()]).toEqual(Object.keys(properties));
    for (const [name, schema] of Object.entries(properties)) {
      const row = rows.get(name);
      expect(row?.meaning, name).toBe(schema.description);
      expect(row?.fallback, name).toBe(
        schema.default === undefined ? (schema['x-unset'] ?? '(generated)') : `\`${String(schema.default)}\``,
      );
    }
  });

  it('reads environment variables and flags, with defaults', () => {
    const config = loadConfig({ PORT: '9090' }, ['--data-dir=/srv/vigil', '--log-level=warn']);
    expect(config.PORT).toBe(9090);
    expect(config.VIGIL_DATA_DIR).toBe('/srv/vigil');
    expect(config.VIGIL_LOG_LEVEL).toBe('warn');
    expect(config.VIGIL_BODY_LIMIT_BYTES).toBe(65536);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('refuses bad values and unknown flags with a message naming them', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ VIGIL_MASTER_KEY: 'short' })).toThrow(/VIGIL_MASTER_KEY/);
    expect(() => loadConfig({}, ['--colour=blue'])).toThrow(/unknown flag: --colour/);
  });
});
