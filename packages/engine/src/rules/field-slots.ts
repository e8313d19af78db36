import type { Activation } from './program.js';

/** How the keys of one object shape map to slots. */
interface ShapePlan {
  /** The object's own enumerable keys, in enumeration order. */
  readonly keys: readonly string[];
  /** For each key, its slot, or -1 when no rule reads it. */
  readonly slots: readonly number[];
  /** Slots of fields this shape lacks. */
  readonly absent: readonly number[];
  /**
   * When the shape has every field the rules read: the number of leading keys that hold them all.
   * An object whose keys start the same way has every field at the same place, whatever follows.
   */
  readonly prefix: number;
  /** How many leading keys a fill walks: `prefix`, or all the keys. */
  readonly end: number;
}

/** The slots of one top-level object (`event`, `features`, ...). */
interface RootPlan {
  readonly root: string;
  readonly fields: Map<string, number>;
  /** Recently seen shapes, most recent first. */
  shapes: ShapePlan[];
  /** Objects that matched no cached shape since the cache was last full. */
  misses: number;
}

const MAX_SHAPES = 4;

/** Fills the slots from an object whose keys were matched against `shape` (see `fillShape`). */
function fillFromShape(shape: ShapePlan, object: Record<string, unknown>, values: unknown[]): void {
  const slots = shape.slots;
  const end = shape.end;
  let position = 0;
  for (const key in object) {
    if (position === end) return;
    const slot = slots[position] as number;
    if (slot >= 0) values[slot] = object[key];
    position++;
  }
}

/**
 * The fields of top-level objects (`event.amount`, `features.count_1h`) read by a set of compiled
 * rules, each given a slot. A rule set fills the slots once per evaluation, so every rule reads an
 * array element instead of doing its own keyed property lookup.
 *
 * Why: a keyed lookup `object[name]` with varying names is megamorphic in V8 and costs 15-30 ns,
 * more than a whole simple rule. Filling walks the object with `for...in`, which V8 compiles to
 * direct field loads, and maps each key to its slot through a plan cached per object shape (the
 * key order), checked key by key (internalized strings compare by pointer).
 */
export class FieldSlots {
  /** The current evaluation's field values, by slot. */
  readonly values: unknown[] = [];
  private readonly roots: RootPlan[] = [];

  /** The slot of `root.field`, allocated on first use. */
  slot(root: string, field: string): number {
    let plan = this.roots.find((candidate) => candidate.root === root);
    if (plan === undefined) {
      plan = { root, fields: new Map(), shapes: [], misses: 0 };
      this.roots.push(plan);
    }
    let index = plan.fields.get(field);
    if (index === undefined) {
      index = this.values.length;
      plan.fields.set(field, index);
      plan.shapes = [];
      this.values.push(undefined);
    }
    return index;
  }

  /** Number of distinct fields. */
  get size(): number {
    return this.values.length;
  }

  /** Reads every slot's field from an activation; a missing object or field leaves `undefined`. */
  fill(activation: Activation): void {
    const roots = this.roots;
    for (let index = 0; index < roots.length; index++) {
      const plan = roots[index] as RootPlan;
      const root = plan.root;
      // Named reads for Vigil's roots are monomorphic; other roots are rare.
      const object =
        root === 'event'
          ? activation.event
          : root === 'features'
            ? activation.features
            : root === 'models'
              ? activation.models
              : activation[root];
      if (typeof object !== 'object' || object === null) {
        for (const slot of plan.fields.values()) this.values[slot] = undefined;
        continue;
      }
      const record = object as Record<string, unknown>;
      let filled = false;
      for (let shape = 0; shape < plan.shapes.length && !filled; shape++) {
        filled = this.fillShape(plan.shapes[shape] as ShapePlan, record);
      }
      if (filled) continue;
      // When shapes churn (clients sending keys in many orders), learning each new shape would
      // allocate on every event: read by key instead, and learn only one miss in 16.
      if (plan.shapes.length < MAX_SHAPES || (++plan.misses & 15) === 0) this.fillNewShape(plan, record);
      else this.fillByKey(plan, record);
    }
  }

  /**
   * Fills from an object of a known shape; false when the object has another shape. The keys are
   * checked first without loading any value.
   */
  private fillShape(shape: ShapePlan, object: Record<string, unknown>): boolean {
    const keys = shape.keys;
    const prefix = shape.prefix;
    let position = 0;
    for (const key in object) {
      if (position === prefix) break;
      if (keys[position] !== key) return false;
      position++;
    }
    if (position !== keys.length && position !== prefix) return false;
    const values = this.values;
    fillFromShape(shape, object, values);
    const absent = shape.absent;
    for (let index = 0; index < absent.length; index++) values[absent[index] as number] = undefined;
    return true;
  }

  private fillNewShape(plan: RootPlan, object: Record<string, unknown>): void {
    const keys: string[] = [];
    for (const key in object) if (Object.hasOwn(object, key)) keys.push(key);
    const slots = keys.map((key) => plan.fields.get(key) ?? -1);
    const present = new Set(slots);
    const absent = [...plan.fields.values()].filter((slot) => !present.has(slot));
    const lastUsed = slots.reduce((last, slot, position) => (slot >= 0 ? position : last), -1);
    const prefix = absent.length === 0 ? lastUsed + 1 : -1;
    const shape: ShapePlan = { keys, slots, absent, prefix, end: prefix >= 0 ? prefix : keys.length };
    plan.shapes = [shape, ...plan.shapes.slice(0, MAX_SHAPES - 1)];
    const values = this.values;
    for (const [field, slot] of plan.fields)
      values[slot] = Object.hasOwn(object, field) ? object[field] : undefined;
  }

  private fillByKey(plan: RootPlan, object: Record<string, unknown>): void {
    const values = this.values;
    for (const [field, slot] of plan.fields)
      values[slot] = Object.hasOwn(object, field) ? object[field] : undefined;
  }

  /** Forgets the last evaluation's values, so no event data stays referenced. */
  clear(): void {
    this.values.fill(undefined);
  }
}
