import type { PolicyInput, RuleInput, Strategy, Verdict } from '@vigil/protocol';
import type { ListMembership } from '../lists/decision-lists.js';

/** One saved version of one event type's policy. A published version is never changed again. */
export interface PolicyVersionRecord {
  tenantId: string;
  eventType: string;
  version: number;
  policy: PolicyInput;
  createdAt: string;
  createdBy: string;
}

/** Which versions serve an event type's traffic. */
export interface PolicyState {
  tenantId: string;
  eventType: string;
  /** The version that decides, or null before the first publish. */
  published: number | null;
  /** Versions published before, most recent last, for rollback. */
  history: number[];
  /** A version deciding for `percent` of events, chosen by a hash of the event id. */
  canary: { version: number; percent: number } | null;
  /** Versions evaluated on live traffic off the response path; their results are stored, never returned. */
  shadows: number[];
  updatedAt: string;
}

/** A rule evaluation that could not produce a boolean: a runtime error or a missing value. */
export interface RuleFailure {
  readonly failure: true;
  readonly message: string;
  /** True when the cause is a value that was absent or could not be fetched in time. */
  readonly missing: boolean;
}

/** Values a rule can see, in a fixed shape (a type alias, so it is also a plain record of variables). */
export type RuleActivation = {
  event: Record<string, unknown>;
  features: Record<string, unknown>;
  models: Record<string, number>;
};

/** A policy's compiled rule conditions, evaluated one rule at a time so `first_match` can stop early. */
export interface CompiledRules {
  /** The rules as written, in order. */
  readonly inputs: readonly RuleInput[];
  /** Reads what the rules need from the activation; called once per evaluation, before `evaluate`. */
  prepare(activation: RuleActivation): void;
  /**
   * The condition of rule `index`: true, false, or why it could not be evaluated. `lists` answers
   * `in_list` for this evaluation; without it every list is empty.
   */
  evaluate(index: number, activation: RuleActivation, lists?: ListMembership): boolean | RuleFailure;
  /**
   * Optional, the fast path: evaluates the rules in order into `results` and returns how many it
   * wrote. Before each rule it charges the CPU guard one unit, as {@link evaluate}'s caller does;
   * a rule not started because the guard tripped is {@link RULE_NOT_STARTED}. With `stopAtHit` it
   * stops after the first rule that holds (`first_match`).
   */
  evaluateAll?(
    activation: RuleActivation,
    lists: ListMembership | undefined,
    stopAtHit: boolean,
    results: RuleResult[],
  ): number;
}

/** What one rule gave in {@link CompiledRules.evaluateAll}. */
export type RuleResult = boolean | RuleFailure | typeof RULE_NOT_STARTED;

/** A rule left out because the CPU guard cut the evaluation off before it. */
export const RULE_NOT_STARTED: unique symbol = Symbol('rule not started');

export interface CompiledPolicy {
  readonly version: number;
  readonly strategy: Strategy;
  readonly thresholds: Partial<Record<Exclude<Verdict, 'accept'>, number>>;
  readonly onMissing: 'not_hit' | 'review';
  readonly rules: CompiledRules;
}

/** A compile problem of one rule, with its place in the rule's `when` text (1-based). */
export interface PolicyCompileError {
  rule: string;
  line: number;
  column: number;
  message: string;
}

/** Turns rule text into evaluable rules; implemented by the rule language. */
export interface RuleCompiler {
  compile(
    rules: readonly RuleInput[],
    environment: RuleEnvironment,
  ): { rules: CompiledRules; errors: [] } | { rules: undefined; errors: PolicyCompileError[] };
}

/** What rules of one event type may refer to. */
export interface RuleEnvironment {
  eventFields: Record<string, import('@vigil/protocol').FieldType>;
  features: Record<string, 'int' | 'double' | 'string'>;
  lists: string[];
  models: string[];
}
