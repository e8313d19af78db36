// The engine defines the services a rule's functions call (`rules/vigil-functions.ts`); this package
// implements them against those exact types.
export type { IpInfo, RuleServices, UserAgentInfo } from '@vigil/engine';
