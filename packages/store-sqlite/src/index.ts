export { SqliteConfigStore } from './sqlite-config-store.js';
export { SqliteDecisionLog, type SqliteDecisionLogOptions } from './sqlite-decision-log.js';
export { SqliteListStore, type SqliteListStoreOptions } from './sqlite-list-store.js';
