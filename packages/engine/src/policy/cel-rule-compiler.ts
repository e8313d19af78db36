import type { ListMembership } from '../lists/decision-lists.js';
import { createEnvironment } from '../rules/environment.js';
import { compileRuleSet, RULE_SET_NOT_STARTED } from '../rules/rule-set.js';
import { CelError } from '../rules/values.js';
import { EMPTY_RULE_SERVICES, type RuleServices } from '../rules/vigil-functions.js';
import { RULE_NOT_STARTED, type RuleCompiler, type RuleFailure, type RuleResult } from './policy-model.js';

/**
 * The host's services with `in_list` answered by whatever membership is current: the evaluation
 * passes its decision's lists, the other services (enrichment) stay those given at construction.
 * Methods are bound so class instances keep their `this`.
 */
function withSwitchableLists(services: RuleServices): {
  services: RuleServices;
  /** The membership `in_list` answers from now on. */
  current: ListMembership;
} {
  const current: ListMembership = services;
  const bound: Record<string, unknown> = {};
  for (let source: object | null = services; source !== null && source !== Object.prototype; ) {
    for (const name of Object.getOwnPropertyNames(source)) {
      const member = (services as unknown as Record<string, unknown>)[name];
      if (name !== 'constructor' && !(name in bound) && typeof member === 'function') {
        bound[name] = member.bind(services);
      }
    }
    source = Object.getPrototypeOf(source) as object | null;
  }
  const host = { services: bound as unknown as RuleServices, current };
  bound.inList = (listName: string, value: unknown) => host.current.inList(listName, value);
  return host;
}

/** Messages of CEL errors that mean a value was absent rather than wrong. */
const missingValue = /no such (key|field)|missing/i;

function failureOf(message: string): RuleFailure {
  return { failure: true, message, missing: missingValue.test(message) };
}

/** What a rule that gave neither true nor false failed with. */
function failureOfOutcome(outcome: unknown): RuleFailure {
  return failureOf(outcome instanceof CelError ? outcome.message : 'the rule did not yield a boolean');
}

/**
 * The rule compiler of Vigil's policies: CEL (SPEC §2), checked against the event type's schema,
 * features, lists and models, compiled to closures once per policy version.
 */
export function celRuleCompiler(services: RuleServices = EMPTY_RULE_SERVICES): RuleCompiler {
  return {
    compile(rules, environment) {
      const celEnvironment = createEnvironment({
        event: environment.eventFields,
        features: environment.features,
        models: environment.models,
        lists: environment.lists,
      });
      const result = compileRuleSet(
        celEnvironment,
        rules.map((rule) => ({ id: rule.id, when: rule.when })),
      );
      if (!result.ok) {
        return {
          rules: undefined,
          errors: result.errors.map((error) => ({
            rule: error.ruleId,
            line: error.line,
            column: error.column,
            message: error.formatted.replace('<input>', error.ruleId),
          })),
        };
      }
      const ruleSet = result.ruleSet;
      const host = withSwitchableLists(services);
      const hostServices = host.services;
      const evaluators = ruleSet.evaluators;
      return {
        errors: [],
        rules: {
          inputs: rules,
          prepare: (activation) => ruleSet.prepare(activation),
          evaluate(index, activation, lists): boolean | RuleFailure {
            // Evaluation is synchronous, so the membership set here is the one its `in_list` calls see.
            host.current = lists ?? services;
            const evaluator = evaluators[index];
            if (evaluator === undefined) return failureOf(`no rule at index ${index}`);
            // Each rule's root closure, called directly: this call is the hot path of a decision.
            const outcome = evaluator(activation, hostServices);
            if (outcome === true || outcome === false) return outcome;
            return failureOfOutcome(outcome);
          },
          evaluateAll(activation, lists, stopAtHit, results: RuleResult[]): number {
            host.current = lists ?? services;
            const count = ruleSet.runAll(activation, hostServices, results, stopAtHit);
            for (let index = 0; index < count; index++) {
              const outcome = results[index] as unknown;
              if (outcome === true || outcome === false) continue;
              results[index] =
                outcome === RULE_SET_NOT_STARTED ? RULE_NOT_STARTED : failureOfOutcome(outcome);
            }
            return count;
          },
        },
      };
    },
  };
}
