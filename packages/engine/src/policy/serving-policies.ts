import type { EventTypeRecord } from '../ports/config-store.js';
import type {
  CompiledPolicy,
  PolicyCompileError,
  PolicyState,
  PolicyVersionRecord,
  RuleCompiler,
  RuleEnvironment,
} from './policy-model.js';

/** The compiled versions that serve one event type: the published one, a canary, shadows. */
export interface ServingPolicies {
  state: PolicyState;
  main: CompiledPolicy | null;
  canary: { policy: CompiledPolicy; percent: number } | null;
  shadows: CompiledPolicy[];
}

/** What rules of an event type can refer to. Features, lists and models join as they are built. */
export function environmentOf(
  eventType: EventTypeRecord,
  lists: readonly string[] = [],
  features: RuleEnvironment['features'] = {},
): RuleEnvironment {
  const eventFields: RuleEnvironment['eventFields'] = {};
  for (const [name, spec] of Object.entries(eventType.schema.fields)) eventFields[name] = spec.type;
  return { eventFields, features: { ...features }, lists: [...lists], models: [] };
}

export class PolicyCompileFailure extends Error {
  constructor(readonly errors: PolicyCompileError[]) {
    super(
      `policy does not compile: ${errors.map((error) => `${error.rule}:${error.line}:${error.column} ${error.message}`).join('; ')}`,
    );
  }
}

/** Compiles one saved version; throws `PolicyCompileFailure` with every error. */
export function compilePolicy(
  compiler: RuleCompiler,
  record: PolicyVersionRecord,
  environment: RuleEnvironment,
): CompiledPolicy {
  const result = compiler.compile(record.policy.rules, environment);
  if (result.rules === undefined) throw new PolicyCompileFailure(result.errors);
  return {
    version: record.version,
    strategy: record.policy.strategy ?? 'worst',
    thresholds: record.policy.thresholds ?? {},
    onMissing: record.policy.on_missing ?? 'not_hit',
    rules: result.rules,
  };
}

/** Compiles every version a state names. */
export function servingPolicies(
  compiler: RuleCompiler,
  state: PolicyState,
  versions: ReadonlyMap<number, PolicyVersionRecord>,
  environment: RuleEnvironment,
): ServingPolicies {
  const compile = (version: number) => {
    const record = versions.get(version);
    if (record === undefined) throw new Error(`policy version ${version} is missing`);
    return compilePolicy(compiler, record, environment);
  };
  return {
    state,
    main: state.published === null ? null : compile(state.published),
    canary:
      state.canary === null ? null : { policy: compile(state.canary.version), percent: state.canary.percent },
    shadows: state.shadows.map(compile),
  };
}
