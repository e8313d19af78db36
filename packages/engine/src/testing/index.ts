export { decisionLogContract, sampleRecord } from './decision-log.contract.js';
