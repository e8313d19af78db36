import type { DecisionResponse, Verdict } from '@vigil/protocol';
import type { ListMembership } from '../lists/decision-lists.js';
import { evaluationGuard } from '../rules/evaluation-guard.js';
import {
  type CompiledPolicy,
  type CompiledRules,
  RULE_NOT_STARTED,
  type RuleActivation,
  type RuleResult,
} from './policy-model.js';

/**
 * How long one policy's rules may run on one event, in ms of wall time on the event loop, when
 * the caller names no budget. A typical policy takes microseconds, so this is thousands of times
 * what it needs, and still short enough that a pathological policy delays other tenants'
 * decisions by no more than this.
 */
export const defaultPolicyCpuBudgetMs = 10;

const severity: Record<Verdict, number> = { accept: 0, challenge: 1, review: 2, reject: 3 };

export function worse(a: Verdict, b: Verdict): Verdict {
  return severity[b] > severity[a] ? b : a;
}

/** What a policy concluded for one event. */
export interface PolicyOutcome {
  verdict: Verdict;
  score: number;
  rules: DecisionResponse['rules'];
  tags: string[];
  errors: DecisionResponse['errors'];
  /**
   * Set when the evaluation was cut off: `cpu` when the policy's CPU budget ran out, `deadline`
   * when the decision's deadline arrived first. The rules left are in `errors`.
   */
  cutOff: 'cpu' | 'deadline' | null;
  /**
   * How long the rules ran, in ms, as the CPU guard measured it: 0 for an evaluation too short
   * for the guard to read the clock (microseconds), so a cheap policy costs no clock read.
   */
  cpuMs: number;
}

/**
 * Evaluates a policy's rules under its strategy (SPEC §2):
 * - `worst`: the most severe verdict among hit rules; no hit means accept.
 * - `first_match`: rules in order, the first hit decides; later rules are not evaluated.
 * - `score`: the sum of hit rules' scores, clamped to 0..100, mapped through `thresholds`; a hit
 *   rule's explicit verdict applies on top with `worst` semantics.
 * A rule that fails is listed in `errors`; `on_missing: review` then raises the verdict to review.
 *
 * The CPU guard: the rules may run for `cpuBudgetMs` and not past `deadline` (a
 * `performance.now()` value). A rule still running then is interrupted inside its loops, and the
 * rules not yet evaluated are not started; all of them are reported in `errors` ("cpu budget
 * exceeded", or "deadline reached ..."), `on_missing` applies to them, and `cutOff` says why.
 */
export function evaluatePolicy(
  policy: CompiledPolicy,
  activation: RuleActivation,
  lists?: ListMembership,
  cpuBudgetMs: number = defaultPolicyCpuBudgetMs,
  deadline: number = Number.POSITIVE_INFINITY,
): PolicyOutcome {
  let verdict: Verdict = 'accept';
  let score = 0;
  const rules: PolicyOutcome['rules'] = [];
  const tags: string[] = [];
  const errors: PolicyOutcome['errors'] = [];
  const compiled = policy.rules;
  const inputs = compiled.inputs;
  const guard = evaluationGuard;
  guard.arm(cpuBudgetMs, deadline);
  let cutOff: PolicyOutcome['cutOff'] = null;
  let cpuMs = 0;
  try {
    compiled.prepare(activation);
    const stopAtHit = policy.strategy === 'first_match';
    const count =
      compiled.evaluateAll === undefined
        ? evaluateEach(compiled, activation, lists, stopAtHit, results)
        : compiled.evaluateAll(activation, lists, stopAtHit, results);
    for (let index = 0; index < count; index += 1) {
      const input = inputs[index] as (typeof inputs)[number];
      const result = results[index] as RuleResult;
      if (result === RULE_NOT_STARTED) {
        errors.push({ rule: input.id, message: guard.error.message });
        if (policy.onMissing === 'review') verdict = worse(verdict, 'review');
        continue;
      }
      if (result === false) continue;
      if (result !== true) {
        errors.push({ rule: input.id, message: result.message });
        if (policy.onMissing === 'review') verdict = worse(verdict, 'review');
        continue;
      }
      const hit: PolicyOutcome['rules'][number] = { id: input.id, name: input.name ?? input.id };
      if (input.verdict !== undefined) {
        hit.verdict = input.verdict;
        verdict = worse(verdict, input.verdict);
      }
      if (input.score !== undefined) {
        hit.score = input.score;
        score += input.score;
      }
      if (input.reason !== undefined) hit.reason = input.reason;
      rules.push(hit);
      if (input.tags !== undefined) for (const tag of input.tags) if (!tags.includes(tag)) tags.push(tag);
      if (policy.strategy === 'first_match') break;
    }
    cutOff = guard.cut;
  } finally {
    cpuMs = guard.elapsedMs();
    guard.disarm();
  }
  score = Math.min(100, Math.max(0, score));
  if (policy.strategy === 'score') {
    for (const level of ['challenge', 'review', 'reject'] as const) {
      const threshold = policy.thresholds[level];
      if (threshold !== undefined && score >= threshold) verdict = worse(verdict, level);
    }
  }
  return { verdict, score, rules, tags, errors, cutOff, cpuMs };
}

/**
 * Results of the policy being evaluated, reused (evaluation is synchronous, one policy at a time);
 * only booleans, failures and the not-started mark are kept in it.
 */
const results: RuleResult[] = [];

/**
 * {@link CompiledRules.evaluateAll} for rules that only evaluate one at a time. Work is charged as
 * it is done: a unit per rule here, a unit per loop iteration and a tenth per character scanned
 * inside the rules. So a policy doing little work never reads the clock (a pause of the process
 * cannot cut it off), and a rule is not started once the budget is spent.
 */
function evaluateEach(
  compiled: CompiledRules,
  activation: RuleActivation,
  lists: ListMembership | undefined,
  stopAtHit: boolean,
  into: RuleResult[],
): number {
  const count = compiled.inputs.length;
  for (let index = 0; index < count; index += 1) {
    if (evaluationGuard.spend(1)) {
      into[index] = RULE_NOT_STARTED;
      continue;
    }
    const result = compiled.evaluate(index, activation, lists);
    into[index] = result;
    if (stopAtHit && result === true) return index + 1;
  }
  return count;
}

/**
 * A stable bucket 0..99 for an event id (FNV-1a), so the same event always lands on the same side
 * of a canary split, on every node.
 */
export function canaryBucket(eventId: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < eventId.length; index += 1) {
    hash ^= eventId.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % 100;
}
