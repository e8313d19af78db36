import type { DecisionResponse, Verdict } from '@vigil/protocol';
import type { ListMembership } from '../lists/decision-lists.js';
import type { CompiledPolicy } from '../policy/policy-model.js';
import type { StoredEvent } from '../ports/decision-log.js';
import type { EventTypeDefinition } from '../tenancy/config-registry.js';
import type { DeadlinePlan } from './deadline-plan.js';

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
  /**
   * Components left out because they failed or would have overrun their budget, or that answered
   * with less than they should (see {@link markDegraded}). The one place degradation is recorded.
   */
  readonly degraded: string[] = [];
  policyVersion: number | null = null;
  /** Versions to evaluate in shadow once the answer is out. */
  shadows: readonly CompiledPolicy[] = [];
  /** List membership for `in_list`, shared by the deciding and the shadow versions. */
  lists: ListMembership | undefined = undefined;
  #features: Record<string, unknown> | undefined = undefined;
  #featuresLeftOut = false;

  constructor(
    readonly tenantId: string,
    readonly event: StoredEvent,
    readonly eventType: EventTypeDefinition,
    /** When the event was received, epoch ms. */
    readonly receivedAt: number,
    /** The deadline and its reserves, in `performance.now()` time (see `deadline-plan.ts`). */
    readonly plan: DeadlinePlan,
  ) {}

  /** Feature values the rules saw, stored with the decision. */
  get features(): Record<string, unknown> | undefined {
    return this.#features;
  }

  /** Ignored once the features stage was left out: its late answer must not reach later stages. */
  set features(values: Record<string, unknown> | undefined) {
    if (!this.#featuresLeftOut) this.#features = values;
  }

  /**
   * Names a component in `degraded`, once. A stage that answers with less than it should (a
   * fallback store, partial data) calls this itself and resolves normally; its output is used.
   */
  markDegraded(component: string): void {
    if (!this.degraded.includes(component)) this.degraded.push(component);
  }

  /**
   * Leaves a stage out of this decision: it is named in `degraded` and what it wrote or writes
   * later is not used (rules that need it follow `on_missing`).
   */
  leaveOut(stage: string): void {
    this.markDegraded(stage);
    if (stage === 'features') {
      this.#featuresLeftOut = true;
      this.#features = undefined;
    }
  }
}

/**
 * One step of the decision: features, lists, models, rules each become a stage. A stage may be
 * synchronous. An asynchronous one is waited for within its budget (see `deadline-plan.ts`);
 * when it overruns the budget, rejects or throws, it is left out ({@link DecisionContext.leaveOut}).
 * A stage that answers degraded but usable marks itself with {@link DecisionContext.markDegraded}.
 */
export interface DecisionStage {
  readonly name: string;
  /**
   * The share (0..1] of the time left before the stages' cut-off this stage may wait for, when it
   * is asynchronous. Default 1: all of it. A stage followed by other asynchronous stages takes
   * less, so they keep time too.
   */
  readonly budgetShare?: number;
  run(context: DecisionContext): void | Promise<void>;
}
