import { createEnvironment, type Environment } from './environment.js';

/** A payment-like environment shared by the rule-language tests. */
export function paymentEnvironment(): Environment {
  return createEnvironment({
    event: {
      amount: 'number',
      quantity: 'integer',
      currency: 'enum',
      ip: 'ip',
      email: 'email',
      phone: 'phone',
      country: 'string',
      user_agent: 'string',
      is_new_device: 'boolean',
      tags: 'string_list',
      created_at: 'timestamp',
      latitude: 'number',
      longitude: 'number',
    },
    features: { tx_count_1h: 'int', tx_sum_24h: 'double' },
    models: ['fraud_score'],
    lists: ['blocked_ips', 'vip_accounts'],
  });
}

/** A complete activation for {@link paymentEnvironment}. */
export function paymentActivation(event: Record<string, unknown> = {}): {
  event: Record<string, unknown>;
  features: Record<string, unknown>;
  models: Record<string, number>;
} {
  return {
    event: {
      type: 'payment',
      id: 'evt_1',
      timestamp: '2024-03-10T12:30:00Z',
      amount: 120.5,
      quantity: 2,
      currency: 'EUR',
      ip: '203.0.113.7',
      email: 'Alice@Example.COM',
      phone: '+33612345678',
      country: 'FR',
      user_agent: 'Mozilla/5.0',
      is_new_device: false,
      tags: ['web', 'returning'],
      created_at: '2024-03-10T12:00:00Z',
      latitude: 48.8566,
      longitude: 2.3522,
      ...event,
    },
    features: { tx_count_1h: 3, tx_sum_24h: 480.25 },
    models: { fraud_score: 0.12 },
  };
}
