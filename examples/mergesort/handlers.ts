/**
 * A parallel merge sort (`regroup worker --handlers <this module>`): a task
 * splits its numbers in two, spawns a child group of two tasks that sort the
 * halves (recursively, `depth` levels down), and merges what they return.
 */
import { logRun } from '../lib/tree.js';
import type { TaskContext } from '../../src/index.js';
import { randomNumbers } from './numbers.js';

export interface SortInput {
  /** The numbers to sort; the root may give `seed` and `n` instead. */
  values?: number[];
  seed?: number;
  n?: number;
  /** Levels of splitting left: 0 sorts in place. */
  depth: number;
}

export interface Sorted {
  values: number[];
  /** Tasks in this task's subtree, itself included. */
  tasks: number;
  /** How deep the subtree went below this task. */
  depth: number;
}

export async function mergesort(input: SortInput, ctx: TaskContext): Promise<Sorted> {
  const values = input.values ?? randomNumbers(input.seed ?? 0, input.n ?? 0);
  if (input.depth <= 0 || values.length < 2) {
    logRun(ctx, { event: 'leaf', n: values.length });
    return { values: values.sort((a, b) => a - b), tasks: 1, depth: 0 };
  }
  const mid = values.length >> 1;
  const halves: SortInput[] = [
    { values: values.slice(0, mid), depth: input.depth - 1 },
    { values: values.slice(mid), depth: input.depth - 1 },
  ];
  const child = await ctx.spawn('mergesort', halves, { key: 'halves' });
  logRun(ctx, { event: 'spawned', spawned: child.id, n: values.length });
  const [left, right] = (await child.wait()) as [Sorted, Sorted];
  return {
    values: merge(left.values, right.values),
    tasks: 1 + left.tasks + right.tasks,
    depth: 1 + Math.max(left.depth, right.depth),
  };
}

function merge(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]! <= b[j]! ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}
