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
export {
  type AsyncReplayGuard,
  RedisReplayGuard,
  type RedisReplayGuardOptions,
} from './redis-replay-guard.js';
