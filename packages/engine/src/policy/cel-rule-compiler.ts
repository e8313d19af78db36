import { createEnvironment } from '../rules/environment.js';
import { compileRuleSet } from '../rules/rule-set.js';
import { CelError } from '../rules/values.js';
import { EMPTY_RULE_SERVICES, type RuleServices } from '../rules/vigil-functions.js';
import type { RuleCompiler, RuleFailure } from './policy-model.js';

/** Messages of CEL errors that mean a value was absent rather than wrong. */
const missingValue = /no such (key|field)|missing/i;

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
      return {
        errors: [],
        rules: {
          inputs: rules,
          prepare: (activation) => ruleSet.prepare(activation),
          evaluate(index, activation): boolean | RuleFailure {
            const outcome = ruleSet.evaluateRule(index, activation, services);
            if (outcome === true || outcome === false) return outcome;
            const message =
              outcome instanceof CelError ? outcome.message : 'the rule did not yield a boolean';
            return { failure: true, message, missing: missingValue.test(message) };
          },
        },
      };
    },
  };
}
