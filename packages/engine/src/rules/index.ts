export type * from './ast.js';
export { type CheckResult, check, type Reference } from './checker.js';
export {
  type Activation,
  type CompiledExpression,
  type CompileOptions,
  type CompileResult,
  compile,
  type RuleActivation,
} from './compiler.js';
export { type CostEstimate, estimateCost } from './cost.js';
export {
  type CelEnvironmentOptions,
  createCelEnvironment,
  createEnvironment,
  DEFAULT_LIMITS,
  type Environment,
  type EnvironmentLimits,
  type FeatureType,
  type FieldType,
  fieldCelType,
  type RuleEnvironmentOptions,
} from './environment.js';
export {
  type ArgumentValidator,
  type CallCostEstimator,
  type FunctionDeclaration,
  FunctionRegistry,
  type OverloadDeclaration,
  type OverloadImplementation,
  overload,
} from './function-registry.js';
export {
  cidrContains,
  isPrivateAddress,
  type ParsedAddress,
  type ParsedCidr,
  parseAddress,
  parseCidr,
} from './network-address.js';
export { type ParseLimits, type ParseResult, parse } from './parser.js';
export {
  CompiledRuleSet,
  compileRuleSet,
  type RuleCondition,
  type RuleIssue,
  type RuleSetResult,
} from './rule-set.js';
export { type CelIssue, Source, type SourcePosition } from './source.js';
export { standardFunctions } from './standard-library.js';
export { formatDuration, formatTimestamp, parseDuration, parseTimestamp, toTimestamp } from './time.js';
export * from './types.js';
export {
  CelDuration,
  CelError,
  CelMap,
  CelTimestamp,
  CelTypeValue,
  CelUint,
  celEquals,
  typeOfValue,
} from './values.js';
export {
  EMPTY_RULE_SERVICES,
  haversineKm,
  IP_INFO_TYPE,
  type IpInfo,
  type RuleServices,
  USER_AGENT_TYPE,
  type UserAgentInfo,
  vigilFunctions,
} from './vigil-functions.js';
