import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCodes, VigilError } from './errors.js';

describe('error registry', () => {
  it('is documented in docs/ERRORS.md code by code, with the same statuses', () => {
    const doc = readFileSync(new URL('../../../docs/ERRORS.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\|\s*`([a-z_]+)`\s*\|\s*(\d{3})\s*\|/gm)].map((match) => [
      match[1],
      Number(match[2]),
    ]);
    expect(rows).toEqual(Object.entries(errorCodes).map(([code, { status }]) => [code, status]));
  });

  it('shapes every error as { error: { code, message, details? } }', () => {
    const error = new VigilError('invalid_event', {
      details: [{ path: 'fields.x', message: 'must be a number' }],
    });
    expect(error.status).toBe(422);
    expect(error.toBody()).toEqual({
      error: {
        code: 'invalid_event',
        message: errorCodes.invalid_event.message,
        details: [{ path: 'fields.x', message: 'must be a number' }],
      },
    });
    expect(new VigilError('rate_limited').retryable).toBe(true);
    expect(new VigilError('invalid_event').retryable).toBe(false);
  });
});
