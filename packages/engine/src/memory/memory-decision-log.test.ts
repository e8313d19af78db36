import { decisionLogContract } from '../testing/decision-log.contract.js';
import { MemoryDecisionLog } from './memory-decision-log.js';

decisionLogContract('MemoryDecisionLog', async () => new MemoryDecisionLog());
