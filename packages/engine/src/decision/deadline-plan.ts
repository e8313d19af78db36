/**
 * How one decision spends its deadline, all in `performance.now()` time:
 *
 * ```
 * arrivedAt ──── stages (features, lists, models, external data) ──── stagesCutoff
 *           ──── rules, under the CPU guard ─────────────────────────── rulesCutoff
 *           ──── the durable write of the record, serialisation ────── deadline = arrivedAt + timeout_ms
 * ```
 *
 * - The write reserve, 10 % of the timeout between 1 and 10 ms, is kept for the durable write of
 *   the record and the response's serialisation: rules stop at `rulesCutoff`.
 * - The answer reserve, 20 % of the timeout between 2 and 20 ms, is kept for the rules and the
 *   write: asynchronous stages are not waited for past `stagesCutoff`. Each waits for at most its
 *   share of the time left until then (`DecisionStage.budgetShare`, default all of it).
 *
 * For the default 100 ms: stages until 80 ms, rules until 90 ms; for 5 ms: 3 ms and 4 ms.
 */
export interface DeadlinePlan {
  /** When the request arrived. */
  readonly arrivedAt: number;
  /** `arrivedAt + timeout_ms`: the answer leaves by then. */
  readonly deadline: number;
  /** No asynchronous stage is waited for past this. */
  readonly stagesCutoff: number;
  /** Rule evaluation stops here at the latest (the CPU guard's deadline). */
  readonly rulesCutoff: number;
}

/** Time kept for the durable write and serialisation, in ms. */
export function writeReserveMs(timeoutMs: number): number {
  return Math.min(10, Math.max(1, timeoutMs * 0.1));
}

/** Time kept after the stages for the rules, the durable write and serialisation, in ms. */
export function answerReserveMs(timeoutMs: number): number {
  return Math.min(20, Math.max(2, timeoutMs * 0.2));
}

/** The plan of a decision that arrived at `arrivedAt` with `timeoutMs` to answer. */
export function planDeadline(arrivedAt: number, timeoutMs: number): DeadlinePlan {
  const deadline = arrivedAt + timeoutMs;
  return {
    arrivedAt,
    deadline,
    stagesCutoff: deadline - answerReserveMs(timeoutMs),
    rulesCutoff: deadline - writeReserveMs(timeoutMs),
  };
}
