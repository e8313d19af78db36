import type { OverloadDeclaration } from './function-registry.js';
import type { Evaluator } from './program.js';
import { CelError } from './values.js';

/** An overload implementation, called with its arguments and then the services. */
export type Implementation = (...args: unknown[]) => unknown;

/**
 * The implementation of an overload; calls into host services are wrapped so that a throwing host
 * function yields an error value instead of breaking the evaluation.
 */
export function guarded(overload: OverloadDeclaration): Implementation {
  const implementation = overload.implementation as Implementation;
  if (overload.usesServices !== true) return implementation;
  return (...args) => {
    try {
      return implementation(...args);
    } catch (error) {
      return new CelError(`${overload.id} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
}

/** A closure calling an implementation with its evaluated arguments; an error argument is the result. */
export function directCall(implementation: Implementation, evaluators: Evaluator[]): Evaluator {
  switch (evaluators.length) {
    case 0:
      return (_activation, services) => implementation(services);
    case 1: {
      const a = evaluators[0] as Evaluator;
      return (activation, services) => {
        const x = a(activation, services);
        return x instanceof CelError ? x : implementation(x, services);
      };
    }
    case 2: {
      const a = evaluators[0] as Evaluator;
      const b = evaluators[1] as Evaluator;
      return (activation, services) => {
        const x = a(activation, services);
        if (x instanceof CelError) return x;
        const y = b(activation, services);
        return y instanceof CelError ? y : implementation(x, y, services);
      };
    }
    default:
      return (activation, services) => {
        const values = new Array<unknown>(evaluators.length + 1);
        for (let index = 0; index < evaluators.length; index++) {
          const value = (evaluators[index] as Evaluator)(activation, services);
          if (value instanceof CelError) return value;
          values[index] = value;
        }
        values[evaluators.length] = services;
        return implementation(...values);
      };
  }
}
