import type { DecisionResponse, Verdict } from '@vigil/protocol';
import type { ListMembership } from '../lists/decision-lists.js';
import type { CompiledPolicy, RuleActivation } from './policy-model.js';

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
}

/**
 * Evaluates a policy's rules under its strategy (SPEC §2):
 * - `worst`: the most severe verdict among hit rules; no hit means accept.
 * - `first_match`: rules in order, the first hit decides; later rules are not evaluated.
 * - `score`: the sum of hit rules' scores, clamped to 0..100, mapped through `thresholds`; a hit
 *   rule's explicit verdict applies on top with `worst` semantics.
 * A rule that fails is listed in `errors`; `on_missing: review` then raises the verdict to review.
 */
export function evaluatePolicy(
  policy: CompiledPolicy,
  activation: RuleActivation,
  lists?: ListMembership,
): PolicyOutcome {
  let verdict: Verdict = 'accept';
  let score = 0;
  const rules: PolicyOutcome['rules'] = [];
  const tags: string[] = [];
  const errors: PolicyOutcome['errors'] = [];
  const compiled = policy.rules;
  const inputs = compiled.inputs;
  compiled.prepare(activation);
  for (let index = 0; index < inputs.length; index += 1) {
    const input = inputs[index] as (typeof inputs)[number];
    const result = compiled.evaluate(index, activation, lists);
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
  score = Math.min(100, Math.max(0, score));
  if (policy.strategy === 'score') {
    for (const level of ['challenge', 'review', 'reject'] as const) {
      const threshold = policy.thresholds[level];
      if (threshold !== undefined && score >= threshold) verdict = worse(verdict, level);
    }
  }
  return { verdict, score, rules, tags, errors };
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
