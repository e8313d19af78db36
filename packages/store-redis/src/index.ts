export { aggregationCodes, counterScript } from './counter-script.js';
export {
  createRedisClient,
  parseRedisUrl,
  type RedisClient,
  type RedisClientOptions,
  type RedisTarget,
  redisOptions,
  whenReady,
} from './redis-client.js';
export {
  RedisCounterStore,
  type RedisCounterStoreOptions,
  RedisUnavailableError,
} from './redis-counter-store.js';
export { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from './redis-idempotency-store.js';
export { RedisListStore, type RedisListStoreOptions } from './redis-list-store.js';
export { type RateGrant, RedisRateLimiter, type RedisRateLimiterOptions } from './redis-rate-limiter.js';
export {
  type AsyncReplayGuard,
  RedisReplayGuard,
  type RedisReplayGuardOptions,
} from './redis-replay-guard.js';
