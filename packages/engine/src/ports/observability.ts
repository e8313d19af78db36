import type { Verdict } from '@vigil/protocol';

/** Structured logger; pino's interface fits it. */
export interface Logger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/** The measurements the engine reports; the server binds them to prom-client. */
export interface Metrics {
  decision(tenantId: string, verdict: Verdict): void;
  /** A shadow version's verdict, and whether it agrees with the verdict that was returned. */
  shadow(tenantId: string, version: number, verdict: Verdict, agrees: boolean): void;
}

export const noopLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
export const noopMetrics: Metrics = { decision() {}, shadow() {} };
