export {
  configStoreContract,
  type OpenedConfigStore,
  sampleAudit,
  sampleTenant,
} from './config-store.contract.js';
export {
  addOperation,
  type CounterStoreContractOptions,
  counterSpec,
  counterStoreContract,
  lastStringSpec,
  readOperation,
} from './counter-store.contract.js';
export { decisionLogContract, sampleRecord } from './decision-log.contract.js';
export {
  type IdempotencyStorePair,
  idempotencyStoreContract,
  sampleResponse,
} from './idempotency-store.contract.js';
export {
  listDefinition,
  listEntry,
  listStoreContract,
  type TestClock,
  testClock,
} from './list-store.contract.js';
