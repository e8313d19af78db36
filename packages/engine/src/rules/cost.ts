import type { CallExpr, ComprehensionExpr, Expr } from './ast.js';
import type { CheckResult } from './checker.js';
import type { Environment } from './environment.js';
import type { CelType } from './types.js';

/**
 * The static cost estimate of an expression, in the spirit of Kubernetes' CEL cost estimation:
 * one unit is about one simple operation (a literal, a field read, a comparison); string and list
 * scans cost a tenth of a unit per element or character; a comprehension costs its range's size
 * bound times the cost of one iteration. Sizes are bounded by the environment's limits
 * (`maxListSize`, `maxMapSize`, `maxStringLength`) unless a literal tells a smaller size.
 */
export interface CostEstimate {
  /** Upper bound of the cost. */
  readonly max: number;
  /** Offset of the most expensive comprehension or call, for the error position. */
  readonly worstOffset: number;
  /** The size bound used for each comprehension's range, by node id (enforced at runtime too). */
  readonly rangeSizes: ReadonlyMap<number, number>;
}

interface NodeCost {
  /** Worst-case cost of evaluating the node. */
  readonly cost: number;
  /** Worst-case size of the value: characters, bytes, elements or entries. */
  readonly size: number;
}

/** Estimates the worst-case cost of an expression (checked types make the estimate tighter). */
export function estimateCost(
  expr: Expr,
  checked: CheckResult | undefined,
  environment: Environment,
): CostEstimate {
  const estimator = new CostEstimator(checked, environment);
  const root = estimator.visit(expr);
  return { max: Math.ceil(root.cost), worstOffset: estimator.worstOffset, rangeSizes: estimator.rangeSizes };
}

/** The worst-case cost of one regular-expression match: RE2 runs in time linear in text × pattern. */
export function regexCost(textSize: number, patternSize: number): number {
  return 1 + Math.ceil((textSize * Math.max(1, patternSize)) / 64);
}

class CostEstimator {
  worstOffset = 0;
  private worstCost = 0;
  readonly rangeSizes = new Map<number, number>();

  constructor(
    private readonly checked: CheckResult | undefined,
    private readonly environment: Environment,
  ) {}

  private sizeOfType(type: CelType | undefined): number {
    const limits = this.environment.limits;
    switch (type?.kind) {
      case 'string':
      case 'bytes':
        return limits.maxStringLength;
      case 'list':
        return limits.maxListSize;
      case 'map':
      case 'object':
        return limits.maxMapSize;
      case 'int':
      case 'uint':
      case 'double':
      case 'bool':
      case 'null_type':
      case 'timestamp':
      case 'duration':
        return 1;
      default:
        // dyn: any of the above.
        return Math.max(limits.maxStringLength, limits.maxListSize, limits.maxMapSize);
    }
  }

  private note(offset: number, cost: number): void {
    if (cost > this.worstCost) {
      this.worstCost = cost;
      this.worstOffset = offset;
    }
  }

  visit(expr: Expr): NodeCost {
    const type = this.checked?.types.get(expr.id);
    switch (expr.kind) {
      case 'literal': {
        const value = expr.value;
        const size =
          typeof value === 'string' ? value.length : value instanceof Uint8Array ? value.length : 1;
        return { cost: 0, size };
      }
      case 'ident':
        return { cost: 1, size: this.sizeOfType(type) };
      case 'select': {
        const operand = this.visit(expr.operand);
        return { cost: operand.cost + 1, size: this.sizeOfType(type) };
      }
      case 'list': {
        let cost = 1;
        for (const element of expr.elements) cost += this.visit(element).cost;
        return { cost, size: expr.elements.length };
      }
      case 'map': {
        let cost = 1;
        for (const entry of expr.entries)
          cost += this.visit(entry.key).cost + this.visit(entry.value).cost + 1;
        return { cost, size: expr.entries.length };
      }
      case 'struct':
        return { cost: 1, size: 1 };
      case 'comprehension':
        return this.comprehension(expr);
      case 'call':
        return this.call(expr, type);
      default:
        return { cost: 0, size: 1 };
    }
  }

  private comprehension(expr: ComprehensionExpr): NodeCost {
    const range = this.visit(expr.range);
    const rangeSize = range.size;
    this.rangeSizes.set(expr.id, rangeSize);
    let iteration = 1;
    if (expr.predicate !== undefined) iteration += this.visit(expr.predicate).cost;
    if (expr.transform !== undefined) iteration += this.visit(expr.transform).cost;
    const cost = range.cost + rangeSize * iteration;
    this.note(expr.offset, cost);
    const isList = expr.macro === 'map' || expr.macro === 'filter';
    return { cost, size: isList ? rangeSize : 1 };
  }

  private call(expr: CallExpr, type: CelType | undefined): NodeCost {
    const argumentExprs = expr.target === undefined ? expr.args : [expr.target, ...expr.args];
    const args = argumentExprs.map((argument) => this.visit(argument));
    const argumentCost = args.reduce((total, argument) => total + argument.cost, 0);
    const sizes = args.map((argument) => argument.size);
    let callCost = 1;
    let size = this.sizeOfType(type);
    switch (expr.function) {
      case '_+_':
        // Concatenation: the result is as large as both operands.
        if (type === undefined || ['string', 'bytes', 'list', 'dyn'].includes(type.kind)) {
          size = (sizes[0] ?? 0) + (sizes[1] ?? 0);
        }
        break;
      case 'matches':
        callCost = regexCost(sizes[0] ?? 0, sizes[1] ?? 0);
        break;
      case '_==_':
      case '_!=_':
        callCost = 1 + Math.min(sizes[0] ?? 0, sizes[1] ?? 0) * 0.1;
        break;
      default: {
        const reference = this.checked?.references.get(expr.id);
        const overloads =
          reference?.kind === 'overloads'
            ? reference.overloads
            : (this.environment.functions.get(expr.function)?.overloads ?? []);
        for (const overload of overloads) {
          if (overload.cost !== undefined) callCost = Math.max(callCost, overload.cost(sizes));
        }
      }
    }
    const cost = argumentCost + callCost;
    if (callCost > 1) this.note(expr.offset, callCost);
    return { cost, size };
  }
}
