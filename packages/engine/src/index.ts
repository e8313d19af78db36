export * from './decision/decision-context.js';
export * from './decision/decision-service.js';
export * from './decision/idempotency-index.js';
export * from './events/event-validator.js';
export * from './ports/config-store.js';
export * from './ports/decision-log.js';
export * from './ports/observability.js';
export * from './tenancy/config-registry.js';
