// Handlers of the regroup workers of the benchmark (`regroup worker --handlers <this file>`).
import { hold as holdTask } from './hold.mjs';

/** Does nothing. */
export async function noop() {
  return null;
}

/** Holds its slot until the benchmark releases it: input { key }. */
export async function hold(input, ctx) {
  return holdTask(input.key, ctx.attempt, ctx.signal);
}

// Trees (scenarios g, h, i; issue 14). Inputs and results are small: the
// benchmark measures the coordinator's bookkeeping of tasks and groups.

/** Tasks a full tree of `fan` children per node holds, `depth` levels below its root. */
function capacity(fan, depth) {
  return (fan ** (depth + 1) - 1) / (fan - 1);
}

/** `rest` split into `k` shares as even as integers allow. */
function shares(rest, k) {
  return Array.from({ length: k }, (_, i) => Math.floor(rest / k) + (i < rest % k ? 1 : 0));
}

/**
 * (g) A node of a tree of `budget` tasks (itself included) at most
 * `depthLeft` levels deep below it: it spawns fanMin children (fanMax when
 * fanMin subtrees of the depth left cannot hold its budget), each with a
 * share of the budget, waits for them, and returns its subtree's counts.
 */
export async function treeNode(input, ctx) {
  const { budget, depthLeft, fanMin, fanMax } = input;
  const rest = budget - 1;
  if (rest <= 0 || depthLeft <= 0) return { tasks: 1, groups: 0, depth: 0 };
  let k = fanMin;
  while (k < fanMax && k * capacity(fanMin, depthLeft - 1) < rest) k++;
  const children = shares(rest, Math.min(k, rest)).map((b) => ({
    budget: b,
    depthLeft: depthLeft - 1,
    fanMin,
    fanMax,
  }));
  const child = await ctx.spawn('treeNode', children, { key: 'children' });
  const results = await child.wait();
  let tasks = 1;
  let groups = 1;
  let depth = 0;
  for (const r of results) {
    tasks += r.tasks;
    groups += r.groups;
    depth = Math.max(depth, r.depth + 1);
  }
  return { tasks, groups, depth };
}

/**
 * (h) One parent, one child group of spawn + adders × perAdd tasks: the spawn
 * carries `spawn` inputs (at most maxTasksPerRequest), the first `adders` of
 * which each ctx.add perAdd more to the child group; the parent waits for all.
 */
export async function fanRoot(input, ctx) {
  const inputs = Array.from({ length: input.spawn }, (_, i) =>
    i < input.adders ? { add: input.perAdd } : 0,
  );
  const child = await ctx.spawn('fanChild', inputs, { key: 'fan' });
  const results = await child.wait();
  return { tasks: results.length, group: child.id };
}

/** A task of (h)'s child group: adds `add` tasks to its group when asked (in adds of at most 20,000), else nothing. */
export async function fanChild(input, ctx) {
  for (let left = input?.add ?? 0; left > 0; left -= 20_000)
    await ctx.add(new Array(Math.min(left, 20_000)).fill(0));
  return null;
}

/** (i) A group that grows with ctx.add to `budget` tasks: each task adds up to `fanout`, sharing its budget. */
export async function grow(input, ctx) {
  const rest = input.budget - 1;
  if (rest <= 0) return null;
  const k = Math.min(input.fanout, rest);
  await ctx.add(shares(rest, k).map((budget) => ({ budget, fanout: input.fanout })));
  return null;
}
