import { CelError } from './values.js';

/**
 * Units of work between two clock reads. Work is counted as it is done, in the cost estimator's
 * units (`cost.ts`): a rule started, a loop iteration (comprehensions, list scans) one unit each,
 * a string or list scanned a tenth per character or element. A unit takes nanoseconds, so an
 * evaluation reads the clock every few microseconds of work, and one doing less than this much
 * work in all never does.
 */
export const GUARD_CHECK_UNITS = 1000;

/** The error a rule interrupted by its policy's CPU budget yields. */
export const CPU_BUDGET_EXCEEDED = new CelError('cpu budget exceeded');
/** The error a rule interrupted because the decision's deadline arrived yields. */
export const DEADLINE_REACHED = new CelError('deadline reached before the rule finished');

/** Why a guarded evaluation was cut off. */
export type GuardCut = 'cpu' | 'deadline';

/**
 * The CPU guard of rule evaluation: a time limit checked between rules and inside every loop of a
 * rule (comprehensions, list scans, string functions), so that no evaluation holds the event loop
 * past its budget, whatever the static cost estimate let through.
 *
 * There is one guard per thread: evaluation is synchronous, so the policy being evaluated arms it
 * before its first rule and disarms it after its last. Work calls {@link spend}; its fast path is
 * one subtraction and one comparison. The clock is read only when the credit runs out, and the
 * budget's start is taken at the first read: an evaluation doing less than
 * {@link GUARD_CHECK_UNITS} of work never reads the clock, so a pause of the process (garbage
 * collection, the OS) cannot cut a cheap policy off; a busier one starts its budget at most that
 * much work late. The budget is wall time on the event loop, which is what other decisions wait for.
 */
export class EvaluationGuard {
  /** Units left before the next clock read; at or below zero once the guard has tripped. */
  credit = GUARD_CHECK_UNITS;
  /** Why evaluation was cut off, once it was; sticky until the next {@link arm}. */
  cut: GuardCut | null = null;
  /** `performance.now()` after which evaluation stops; NaN until the first clock read. */
  #cutoff = Number.NaN;
  /** The CPU budget in ms, from the first clock read; Infinity when there is none. */
  #budgetMs = Number.POSITIVE_INFINITY;
  /** `performance.now()` by which evaluation must end whatever the budget (the decision's deadline). */
  #deadline = Number.POSITIVE_INFINITY;
  /** `performance.now()` at the first clock read of this evaluation; NaN until then. */
  #start = Number.NaN;

  /**
   * Starts guarding an evaluation: it may use `budgetMs` of time from the first clock read, and
   * must not go past `deadline` (a `performance.now()` value; Infinity for none).
   */
  arm(budgetMs: number, deadline: number): void {
    this.credit = GUARD_CHECK_UNITS;
    this.cut = null;
    this.#cutoff = Number.NaN;
    this.#budgetMs = budgetMs;
    this.#deadline = deadline;
    this.#start = Number.NaN;
  }

  /**
   * The time this evaluation has run since the guard first read the clock, in ms; 0 when it never
   * did (less than {@link GUARD_CHECK_UNITS} of work: microseconds). Reads the clock only then.
   */
  elapsedMs(): number {
    return Number.isNaN(this.#start) ? 0 : performance.now() - this.#start;
  }

  /** Stops guarding: later evaluations on this thread run unlimited until the next {@link arm}. */
  disarm(): void {
    this.arm(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }

  /** Records `units` of work; true when evaluation must stop. */
  spend(units: number): boolean {
    this.credit -= units;
    return this.credit <= 0 && this.check();
  }

  /** The error a cut-off evaluation yields. */
  get error(): CelError {
    return this.cut === 'deadline' ? DEADLINE_REACHED : CPU_BUDGET_EXCEEDED;
  }

  /** Reads the clock: true (and sticky) once the cut-off has passed. Call when the credit ran out. */
  check(): boolean {
    if (this.cut !== null) return true;
    this.credit = GUARD_CHECK_UNITS;
    if (this.#budgetMs === Number.POSITIVE_INFINITY && this.#deadline === Number.POSITIVE_INFINITY) {
      return false;
    }
    const now = performance.now();
    if (Number.isNaN(this.#cutoff)) {
      this.#start = now;
      this.#cutoff = Math.min(now + this.#budgetMs, this.#deadline);
    }
    if (now <= this.#cutoff) return false;
    this.cut = this.#cutoff === this.#deadline ? 'deadline' : 'cpu';
    this.credit = 0;
    return true;
  }
}

/** The guard of this thread (see {@link EvaluationGuard}). */
export const evaluationGuard = new EvaluationGuard();
