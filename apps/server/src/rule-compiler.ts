import type { RuleCompiler } from '@vigil/engine';

/** Placeholder until the CEL compiler lands: every rule is refused with a clear message. */
export const ruleCompiler: RuleCompiler = {
  compile: (rules) => ({
    rules: undefined,
    errors: rules.map((rule) => ({
      rule: rule.id,
      line: 1,
      column: 1,
      message: 'the rule language is not available yet',
    })),
  }),
};
