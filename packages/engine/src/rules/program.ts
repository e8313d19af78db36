import type { CostEstimate } from './cost.js';
import type { SlotTest } from './slot-test.js';
import type { CelType } from './types.js';
import { CelError } from './values.js';
import { EMPTY_RULE_SERVICES, type RuleServices } from './vigil-functions.js';

/** The variables of one evaluation, by name (for rules: `event`, `features`, `models`). */
export type Activation = Readonly<Record<string, unknown>>;

/** The activation of a Vigil rule. Build it with a fixed shape (no spreads) on the hot path. */
export interface RuleActivation {
  readonly event: Readonly<Record<string, unknown>>;
  readonly features: Readonly<Record<string, unknown>>;
  readonly models: Readonly<Record<string, number>>;
}

/** One compiled node: evaluates to a value or a `CelError`, never throws on CEL errors. */
export type Evaluator = (activation: Activation, services: RuleServices) => unknown;

/** A compiled expression: compile once, evaluate many times. */
export interface CompiledExpression {
  readonly source: string;
  /** The checked type of the expression (`dyn` when compiled without checking). */
  readonly type: CelType;
  /** The estimated worst-case cost, see `cost.ts`. */
  readonly cost: CostEstimate;
  /**
   * Evaluates the expression. Returns the value, or a `CelError` when evaluation failed (division by
   * zero, missing field, overflow, a value of the wrong type, a throwing service, ...). Does not
   * throw for CEL errors; it has no catch-all guard (that would cost more than a simple rule), so
   * a host that must survive engine bugs wraps its own loop, as `CompiledRuleSet.evaluateAll` does.
   */
  evaluate(activation: Activation, services?: RuleServices): unknown;
}

/** @internal The compiled expression; rule sets call its {@link Program.evaluator} directly. */
export class Program implements CompiledExpression {
  readonly source: string;
  readonly type: CelType;
  readonly cost: CostEstimate;
  /** The root closure, with a bool check when the expression must be bool but was not checked to be. */
  readonly evaluator: Evaluator;
  /** The root as a slot test, when it is one and needs no bool check; rule sets run it directly. */
  readonly test: SlotTest | undefined;

  constructor(
    source: string,
    type: CelType,
    cost: CostEstimate,
    root: { readonly evaluate: Evaluator; readonly test?: SlotTest | undefined },
    expectBoolean: boolean,
  ) {
    this.source = source;
    this.type = type;
    this.cost = cost;
    const notBool = new CelError('expression did not evaluate to a bool');
    const evaluate = root.evaluate;
    const needsCheck = expectBoolean && type.kind !== 'bool';
    this.evaluator = needsCheck
      ? (activation, services) => {
          const result = evaluate(activation, services);
          return typeof result === 'boolean' || result instanceof CelError ? result : notBool;
        }
      : evaluate;
    this.test = needsCheck ? undefined : root.test;
  }

  evaluate(activation: Activation, services: RuleServices = EMPTY_RULE_SERVICES): unknown {
    // No try/catch here: it costs more than the rest of a simple rule. Host values are checked
    // against their declared types when read, and calls into host services are guarded where made.
    return this.evaluator(activation, services);
  }
}
