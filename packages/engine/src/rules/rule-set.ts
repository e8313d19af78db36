import { compileWithSlots } from './compiler.js';
import type { Environment } from './environment.js';
import { evaluationGuard as guard } from './evaluation-guard.js';
import { FieldSlots } from './field-slots.js';
import { generateRunner, type RuleRunner } from './generated-rules.js';
import type { Activation, CompiledExpression, Evaluator, Program } from './program.js';
import { runJunction, runLeaf, runSlotTest, type SlotTest, SlotTestOperation } from './slot-test.js';
import type { CelIssue } from './source.js';
import { CelError } from './values.js';
import { EMPTY_RULE_SERVICES, type RuleServices } from './vigil-functions.js';

/** A rule {@link CompiledRuleSet.runAll} did not start because the CPU guard had tripped. */
export const RULE_SET_NOT_STARTED: unique symbol = Symbol('rule not started');

/** One rule's condition to compile. */
export interface RuleCondition {
  readonly id: string;
  /** The CEL expression; must be bool. */
  readonly when: string;
}

/** A compile error of one rule of a rule set. */
export interface RuleIssue extends CelIssue {
  readonly ruleId: string;
}

/** The outcome of {@link compileRuleSet}: the rule set, or every error of every rule. */
export type RuleSetResult =
  | { readonly ok: true; readonly ruleSet: CompiledRuleSet }
  | { readonly ok: false; readonly errors: readonly RuleIssue[] };

/**
 * The compiled conditions of a policy's rules. Fields of `event`, `features` and `models` are read
 * once per evaluation into shared slots, then every rule reads the slots.
 *
 * Not re-entrant: one evaluation at a time per rule set (evaluation is synchronous, so this only
 * matters if a service function evaluated the same rule set again).
 */
export class CompiledRuleSet {
  /** Rule ids, in the order given. */
  readonly ids: readonly string[];
  /** The compiled conditions, in the same order. */
  readonly programs: readonly CompiledExpression[];
  private readonly slots: FieldSlots;
  /**
   * The root closure of each rule, in order: call after {@link prepare}; true, false, or a
   * `CelError`. The fastest way to run one rule (`evaluateRule` checks the index first).
   */
  readonly evaluators: readonly Evaluator[];
  private readonly tests: readonly (SlotTest | undefined)[];

  /** @internal Use {@link compileRuleSet}. */
  constructor(ids: readonly string[], programs: readonly Program[], slots: FieldSlots) {
    this.ids = ids;
    this.programs = programs;
    this.slots = slots;
    this.evaluators = programs.map((program) => program.evaluator);
    this.tests = programs.map((program) => program.test);
  }

  /** Number of distinct fields the rules read. */
  get fieldCount(): number {
    return this.slots.size;
  }

  /** Reads the activation's fields for the rules; call before {@link evaluateRule}. */
  prepare(activation: Activation): void {
    this.slots.fill(activation);
  }

  /**
   * Evaluates one rule after {@link prepare}: true, false, or a `CelError` when the rule errored.
   * Lets a `first_match` policy stop at the first hit.
   */
  evaluateRule(
    index: number,
    activation: Activation,
    services: RuleServices = EMPTY_RULE_SERVICES,
  ): boolean | CelError {
    if (index < 0 || index >= this.evaluators.length) return new CelError(`no rule at index ${index}`);
    return this.run(index, activation, services);
  }

  /**
   * Evaluates every rule into `results` (reused across calls, so nothing is allocated):
   * `results[i]` is true, false, or a `CelError`.
   */
  evaluateAll(
    activation: Activation,
    services: RuleServices = EMPTY_RULE_SERVICES,
    results: (boolean | CelError)[] = new Array(this.programs.length),
  ): (boolean | CelError)[] {
    this.slots.fill(activation);
    const evaluators = this.evaluators;
    const tests = this.tests;
    const count = evaluators.length;
    let index = 0;
    // One guard per evaluation, not per rule: should anything throw (a bug, hostile host data), that
    // rule is marked errored and the others still run.
    while (index < count) {
      try {
        for (; index < count; index++) {
          // Inlined `run`: this loop is the hot path of a decision.
          const test = tests[index];
          if (test === undefined) {
            results[index] = (evaluators[index] as Evaluator)(activation, services) as boolean | CelError;
            continue;
          }
          const operation = test.operation;
          results[index] = (
            operation < SlotTestOperation.And
              ? runLeaf(test)
              : operation <= SlotTestOperation.Or
                ? runJunction(test, activation, services)
                : runSlotTest(test, activation, services)
          ) as boolean | CelError;
        }
      } catch (error) {
        results[index] = new CelError(
          `evaluation failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        index++;
      }
    }
    return results;
  }

  /**
   * Evaluates the rules in order into `results` (after {@link prepare}) and returns how many it
   * wrote: true, false, a `CelError`, or {@link RULE_SET_NOT_STARTED} for a rule not started
   * because the CPU guard tripped (it is charged one unit before each rule). With `stopAtHit` it
   * stops after the first rule that holds. The hot path of a decision: a generated runner calls
   * each rule from its own call site (`generateRunner`); without code generation, a loop does.
   */
  runAll(activation: Activation, services: RuleServices, results: unknown[], stopAtHit: boolean): number {
    this.#runner ??= generateRunner(this.evaluators, RULE_SET_NOT_STARTED) ?? this.#loop;
    return this.#runner(activation, services, results, stopAtHit);
  }

  #runner: RuleRunner | undefined;

  readonly #loop: RuleRunner = (activation, services, results, stopAtHit) => {
    const evaluators = this.evaluators;
    for (let index = 0; index < evaluators.length; index++) {
      if (guard.spend(1)) {
        results[index] = RULE_SET_NOT_STARTED;
        continue;
      }
      const value = (evaluators[index] as Evaluator)(activation as Activation, services as RuleServices);
      results[index] = value;
      if (stopAtHit && value === true) return index + 1;
    }
    return evaluators.length;
  };

  private run(index: number, activation: Activation, services: RuleServices): boolean | CelError {
    // A rule whose root is a slot test runs without a closure call (see `slot-test.ts`).
    const test = this.tests[index];
    if (test === undefined)
      return (this.evaluators[index] as Evaluator)(activation, services) as boolean | CelError;
    const operation = test.operation;
    if (operation < SlotTestOperation.And) return runLeaf(test) as boolean | CelError;
    if (operation <= SlotTestOperation.Or)
      return runJunction(test, activation, services) as boolean | CelError;
    return runSlotTest(test, activation, services) as boolean | CelError;
  }

  /** Drops references to the last evaluation's data. */
  release(): void {
    this.slots.clear();
  }
}

/**
 * Compiles the conditions of a policy's rules against one environment. Every rule must parse,
 * type-check to bool and stay within the cost budget; otherwise every error of every rule is
 * returned, with its rule id, line, column and caret message.
 */
export function compileRuleSet(
  environment: Environment,
  rules: readonly RuleCondition[],
  options: { readonly generate?: boolean } = {},
): RuleSetResult {
  const slots = new FieldSlots();
  const programs: Program[] = [];
  const errors: RuleIssue[] = [];
  for (const rule of rules) {
    const result = compileWithSlots(
      environment,
      rule.when,
      { expectBoolean: true, generate: options.generate !== false },
      slots,
    );
    if (result.ok) programs.push(result.program);
    else for (const error of result.errors) errors.push({ ...error, ruleId: rule.id });
  }
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    ruleSet: new CompiledRuleSet(
      rules.map((rule) => rule.id),
      programs,
      slots,
    ),
  };
}
