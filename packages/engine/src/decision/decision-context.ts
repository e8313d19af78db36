import type { DecisionResponse, Verdict } from '@vigil/protocol';
import type { ListMembership } from '../lists/decision-lists.js';
import type { CompiledPolicy } from '../policy/policy-model.js';
import type { StoredEvent } from '../ports/decision-log.js';
import type { EventTypeDefinition } from '../tenancy/config-registry.js';

type RuleHit = DecisionResponse['rules'][number];
type RuleError = DecisionResponse['errors'][number];

/**
 * Everything one decision reads and builds. Created with a fixed shape so the stages' property
 * reads stay monomorphic.
 */
export class DecisionContext {
  verdict: Verdict = 'accept';
  score = 0;
  readonly rules: RuleHit[] = [];
  readonly tags: string[] = [];
  readonly errors: RuleError[] = [];
  /** Components left out because they failed or would have overrun the deadline. */
  readonly degraded: string[] = [];
  policyVersion: number | null = null;
  /** Feature values the rules saw, stored with the decision. */
  features: Record<string, unknown> | undefined = undefined;
  /** Versions to evaluate in shadow once the answer is out. */
  shadows: readonly CompiledPolicy[] = [];
  /** List membership for `in_list`, shared by the deciding and the shadow versions. */
  lists: ListMembership | undefined = undefined;

  constructor(
    readonly tenantId: string,
    readonly event: StoredEvent,
    readonly eventType: EventTypeDefinition,
    /** `performance.now()` value by which the answer must be ready. */
    readonly deadline: number,
    /** When the event was received, epoch ms. */
    readonly receivedAt: number,
  ) {}
}

/**
 * One step of the decision: features, lists, models, rules each become a stage. A stage may be
 * synchronous; an asynchronous one is given the time left before the deadline and, when it
 * overruns, is left out and named in `degraded`.
 */
export interface DecisionStage {
  readonly name: string;
  run(context: DecisionContext): void | Promise<void>;
}
