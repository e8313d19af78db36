import type { DecisionContext, DecisionStage } from '../decision/decision-context.js';
import { DecisionLists } from '../lists/decision-lists.js';
import type { LocalListIndex } from '../ports/list-store.js';
import type { CompiledPolicy, RuleActivation } from './policy-model.js';
import type { ServingPolicies } from './serving-policies.js';
import { canaryBucket, defaultPolicyCpuBudgetMs, evaluatePolicy } from './strategy.js';
import type { TenantRuleCpu } from './tenant-rule-cpu.js';

/**
 * Builds what rules see of an event: its fields plus `type`, `id` and `timestamp`.
 *
 * `Object.assign` onto a fresh literal, not a spread: V8 clones a spread of a parsed body with a new
 * hidden class almost every time (200 classes for 200 reference events, about 10 µs per event),
 * which also leaves every rule's field reads megamorphic. Assigned, events whose fields come in
 * the same order share one class (2 for the same 200 events, about 3 µs; bench/activation.mjs).
 */
export function activationOf(context: DecisionContext): RuleActivation {
  const event: Record<string, unknown> = Object.assign({}, context.event.fields);
  event.type = context.event.type;
  event.id = context.event.id;
  event.timestamp = context.event.timestamp;
  return { event, features: context.features ?? {}, models: {} };
}

/**
 * Picks the version for this event (canary by a hash of its id) and applies its rules under the
 * CPU guard: they may run for `cpuBudgetMs`, and not past the decision's rules cut-off. A policy
 * cut off is named in `degraded`: `policy_cpu` when its budget ran out, `policy_deadline` when the
 * deadline came first; its rules left are in `errors` and follow `on_missing`.
 */
export class PolicyStage implements DecisionStage {
  readonly name = 'rules';

  constructor(
    private readonly policiesOf: (tenantId: string, eventType: string) => ServingPolicies | undefined,
    /** The lists `in_list` reads; without it every list is empty. */
    private readonly lists?: LocalListIndex,
    private readonly cpuBudgetMs: number = defaultPolicyCpuBudgetMs,
    /** Each tenant's share of the node's time for rules; without it, only the per-event budget. */
    private readonly tenantCpu?: TenantRuleCpu,
  ) {}

  run(context: DecisionContext): void {
    const serving = this.policiesOf(context.tenantId, context.event.type);
    if (serving === undefined) return;
    if (this.lists !== undefined) context.lists = new DecisionLists(this.lists, context.tenantId);
    if (serving.shadows.length > 0) context.shadows = serving.shadows;
    let policy: CompiledPolicy | null = serving.main;
    if (serving.canary !== null && canaryBucket(context.event.id) < serving.canary.percent) {
      policy = serving.canary.policy;
    }
    if (policy === null) return;
    const tenantCpu = this.tenantCpu;
    const outcome = evaluatePolicy(
      policy,
      activationOf(context),
      context.lists,
      tenantCpu === undefined ? this.cpuBudgetMs : tenantCpu.budget(context.tenantId, this.cpuBudgetMs),
      context.plan.rulesCutoff,
    );
    if (outcome.cpuMs > 0) tenantCpu?.charge(context.tenantId, outcome.cpuMs);
    if (outcome.cutOff !== null)
      context.markDegraded(outcome.cutOff === 'cpu' ? 'policy_cpu' : 'policy_deadline');
    context.verdict = outcome.verdict;
    context.score = outcome.score;
    context.rules.push(...outcome.rules);
    context.tags.push(...outcome.tags);
    context.errors.push(...outcome.errors);
    context.policyVersion = policy.version;
  }
}
