export { Journal, type JournalOptions, type JournalPosition, type Undelivered } from './journal.js';
export { type Migration, migrate, migrations } from './migrations.js';
export {
  clientConfig,
  createPool,
  inTransaction,
  type PostgresSettings,
  postgresDefaults,
  sqlState,
} from './pg-pool.js';
export {
  type ConfigWatch,
  type ConfigWatchOptions,
  configChannel,
  PostgresConfigStore,
} from './postgres-config-store.js';
export { PostgresDecisionLog, type PostgresDecisionLogOptions } from './postgres-decision-log.js';
