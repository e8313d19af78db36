import { describe, expect, it } from 'vitest';
import type { DecisionContext } from '../decision/decision-context.js';
import { activationOf } from './policy-stage.js';

describe('activationOf', () => {
  const context = (fields: Record<string, unknown>) =>
    ({
      event: { type: 'payment', id: 'evt-1', timestamp: '2026-11-24T12:00:00.000Z', fields },
      features: { count_1h: 3 },
    }) as unknown as DecisionContext;

  it("gives the rules the event's fields with its type, id and timestamp, which win over fields of those names", () => {
    const fields = { amount: 12.5, type: 'field-type', id: 'field-id', country: 'FR' };
    const activation = activationOf(context(fields));
    expect(activation.event).toEqual({
      amount: 12.5,
      type: 'payment',
      id: 'evt-1',
      country: 'FR',
      timestamp: '2026-11-24T12:00:00.000Z',
    });
    expect(activation.features).toEqual({ count_1h: 3 });
    // The stored event is left as it came.
    expect(fields).toEqual({ amount: 12.5, type: 'field-type', id: 'field-id', country: 'FR' });
  });

  it('keeps the fields in their order, then type, id and timestamp', () => {
    const first = activationOf(context({ account_id: 'a', amount: 1 })).event;
    const second = activationOf(context({ account_id: 'b', amount: 2 })).event;
    expect(Object.keys(first)).toEqual(Object.keys(second));
    expect(Object.keys(first)).toEqual(['account_id', 'amount', 'type', 'id', 'timestamp']);
  });
});
