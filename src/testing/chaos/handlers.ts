/**
 * The tasks of a fault run. Each result is a function of the input alone, so
 * the checker knows the right answer; some tasks fail on their first attempt
 * (deterministically) so retries are exercised too.
 *
 * Besides the flat `chaosTask`, trees (docs/design.md, "Trees: ctx.add" and
 * "Trees: ctx.spawn"):
 * - `chaosCrawl`: a crawler's page that adds its links to its own group with
 *   `ctx.add`, two adds a page (keyed, or the default keys `#0`, `#1`); some
 *   pages fail their first attempt after adding, so the retry repeats the
 *   adds under the same keys. The group's size is known from its roots.
 * - `chaosTreeSum`: a tree sum; a node spawns its `fanout` children with
 *   `ctx.spawn`, waits on them and returns the sum of their values; a leaf
 *   returns a number of its own. Some nodes fail their first attempt after
 *   spawning, so the retry finds the same child group.
 * - `chaosBatch`: spawns two child groups of `chaosSteps` (the first with the
 *   default key, the second keyed) and returns the sum of their results.
 * - `chaosSteps`: works in steps and checkpoints after each; a third of them
 *   fail their first attempt midway, so the next attempt resumes from the
 *   checkpoint.
 *
 * Tree handlers report what their adds, spawns and waits answered through a
 * `TreeRecorder` (the worker process writes it to its history).
 */
import type { SpawnedGroup, SpawnOptions, TaskAdded, TaskContext } from '../../worker/index.js';

export interface ChaosInput {
  /** Group number and index: the task's identity in the run. */
  g: number;
  i: number;
  /** How long the task takes. */
  ms: number;
}

/** FNV-1a of a string, as 8 hex digits: cheap, deterministic, spread out. */
export function fnv(s: string): string {
  let h = 0x811c9dc5;
  for (const c of s) {
    h ^= c.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** A number in [min, max] from a string, the same every time. */
function spread(s: string, min: number, max: number): number {
  return min + (parseInt(fnv(s), 16) % (max - min + 1));
}

/** The identity hashed. */
export function expectedValue(input: ChaosInput): string {
  return fnv(`${input.g}:${input.i}`);
}

/** One task in 20 throws on its first attempt. */
export function failsFirst(input: ChaosInput): boolean {
  return parseInt(expectedValue(input).slice(0, 4), 16) % 20 === 0;
}

const aborted = (signal: AbortSignal): Error =>
  signal.reason instanceof Error ? signal.reason : new Error('aborted');

/**
 * Sleeps `ms`, or rejects once the run's signal fires, also when it fired
 * before (say, during an add): a run that its worker ended (its own timeout,
 * a revoke) must not go on as if it had succeeded.
 */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(aborted(signal));
      return;
    }
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(aborted(signal));
    });
  });

/**
 * Sleeps `input.ms`, then answers. It never calls ctx.heartbeat nor saves a
 * checkpoint: the checker's ran_past_limit counts a heartbeatTimeoutMs from
 * the run's start, as for a run that shows no progress.
 */
export async function chaosTask(input: ChaosInput, ctx: TaskContext): Promise<string> {
  await sleep(input.ms, ctx.signal);
  if (ctx.attempt === 1 && failsFirst(input))
    throw new Error(`planned failure of ${input.g}:${input.i}`);
  return expectedValue(input);
}

// ---- Trees

/** What a tree handler's adds, spawns and waits answered, for the history. */
export interface TreeRecorder {
  added(ctx: TaskContext, key: string, inputs: unknown[], added: TaskAdded): void;
  spawned(ctx: TaskContext, key: string, handler: string, inputs: unknown[], childId: string): void;
  waited(ctx: TaskContext, childId: string, total: number, succeeded: number): void;
}

/**
 * One run's adds, spawns and waits, recorded. Keys without one given are
 * numbered as the worker numbers them: `#0`, `#1`, ... in call order, adds
 * and spawns apart.
 */
class TreeRun {
  private adds = 0;
  private spawns = 0;

  constructor(
    private readonly ctx: TaskContext,
    private readonly rec: TreeRecorder,
  ) {}

  async add(inputs: unknown[], key?: string): Promise<TaskAdded> {
    const k = key ?? `#${this.adds++}`;
    const added = await this.ctx.add(inputs, key === undefined ? undefined : { key });
    this.rec.added(this.ctx, k, inputs, added);
    return added;
  }

  async spawn<R>(
    handler: string,
    inputs: unknown[],
    o: { key?: string; options?: SpawnOptions['options'] },
  ): Promise<SpawnedGroup<R>> {
    const k = o.key ?? `#${this.spawns++}`;
    const child = await this.ctx.spawn<R>(handler, inputs, {
      ...(o.key === undefined ? {} : { key: o.key }),
      options: { ...TREE_OPTIONS, ...o.options },
    });
    this.rec.spawned(this.ctx, k, handler, inputs, child.id);
    return child;
  }

  /** The child's results once it is done; throws (a retry) when some task of it did not succeed. */
  async wait<R>(child: SpawnedGroup<R>): Promise<R[]> {
    const outcomes = await child.waitSettled({ signal: this.ctx.signal });
    const ok = outcomes.filter((o) => o.state === 'succeeded').length;
    this.rec.waited(this.ctx, child.id, outcomes.length, ok);
    if (ok !== outcomes.length)
      throw new Error(`child group ${child.id}: ${outcomes.length - ok} tasks did not succeed`);
    return outcomes.map((o) => o.value as R);
  }
}

/**
 * Options of tree groups and their children: a parent waits as long as its
 * children take, and under the nemesis it is interrupted often (each death of
 * its worker is a node failure), so attempts and node failures are generous.
 */
export const TREE_OPTIONS = { maxAttempts: 10, backoffMs: 50, maxNodeFailures: 100 };

/** A page of the crawl: `fan` links below it down to `maxDepth`. */
export interface CrawlInput {
  g: number;
  path: string;
  depth: number;
  maxDepth: number;
  fan: number;
  /** Adds with the handler's keys (`left`, `right`), else the default ones. */
  keyed: boolean;
}

const crawlValue = (p: CrawlInput): string => fnv(`crawl:${p.g}:${p.path}`);

/** How many pages a crawl from `roots` visits: each root and every page below it. */
export function crawlSize(roots: readonly CrawlInput[]): number {
  let n = 0;
  for (const r of roots) for (let d = 0; d <= r.maxDepth - r.depth; d++) n += r.fan ** d;
  return n;
}

export async function chaosCrawl(
  page: CrawlInput,
  ctx: TaskContext,
  rec: TreeRecorder,
): Promise<string> {
  const tree = new TreeRun(ctx, rec);
  if (page.depth < page.maxDepth) {
    const links = Array.from({ length: page.fan }, (_, k) => ({
      ...page,
      path: `${page.path}.${k}`,
      depth: page.depth + 1,
    }));
    const half = Math.floor(links.length / 2);
    await tree.add(links.slice(0, half), page.keyed ? 'left' : undefined);
    await tree.add(links.slice(half), page.keyed ? 'right' : undefined);
  }
  await sleep(spread(`ms:${page.g}:${page.path}`, 50, 300), ctx.signal);
  if (ctx.attempt === 1 && spread(`fail:${page.g}:${page.path}`, 0, 7) === 0)
    throw new Error(`planned failure of crawl ${page.g}:${page.path} after its adds`);
  return crawlValue(page);
}

/** A node of a tree sum: a leaf at depth 0, else `fanout` children one level down. */
export interface TreeInput {
  g: number;
  path: string;
  depth: number;
  fanout: number;
  /** Spawns its children under the key `kids`, else the default `#0`. */
  keyed: boolean;
}

const leafValue = (n: TreeInput): number => spread(`leaf:${n.g}:${n.path}`, 0, 999);

function treeChildren(n: TreeInput): TreeInput[] {
  return Array.from({ length: n.fanout }, (_, k) => ({
    ...n,
    path: `${n.path}.${k}`,
    depth: n.depth - 1,
  }));
}

/** The sum of the leaves under a node. */
export function treeSumOf(n: TreeInput): number {
  if (n.depth <= 0) return leafValue(n);
  return treeChildren(n).reduce((a, c) => a + treeSumOf(c), 0);
}

export async function chaosTreeSum(
  node: TreeInput,
  ctx: TaskContext,
  rec: TreeRecorder,
): Promise<number> {
  const failsFirst = ctx.attempt === 1 && spread(`fail:${node.g}:${node.path}`, 0, 5) === 0;
  if (node.depth <= 0) {
    await sleep(spread(`ms:${node.g}:${node.path}`, 50, 300), ctx.signal);
    if (failsFirst) throw new Error(`planned failure of leaf ${node.g}:${node.path}`);
    return leafValue(node);
  }
  const tree = new TreeRun(ctx, rec);
  const child = await tree.spawn<number>('chaosTreeSum', treeChildren(node), {
    ...(node.keyed ? { key: 'kids' } : {}),
    // Leaves are short: their group has a limit, so the checker judges their runs too.
    ...(node.depth === 1 ? { options: { timeoutMs: 3000 } } : {}),
  });
  if (failsFirst) throw new Error(`planned failure of node ${node.g}:${node.path} after its spawn`);
  const values = await tree.wait(child);
  return values.reduce((a, b) => a + b, 0);
}

/** A batch: two child groups of `chaosSteps`, `a` and `b` tasks of `steps` steps. */
export interface BatchInput {
  g: number;
  i: number;
  a: number;
  b: number;
  steps: number;
}

export interface StepsInput {
  g: number;
  path: string;
  steps: number;
}

const stepValue = (s: StepsInput, k: number): number => spread(`step:${s.g}:${s.path}:${k}`, 0, 99);

export function stepsSum(s: StepsInput): number {
  let acc = 0;
  for (let k = 0; k < s.steps; k++) acc += stepValue(s, k);
  return acc;
}

function batchParts(b: BatchInput): [StepsInput[], StepsInput[]] {
  const part = (name: string, n: number): StepsInput[] =>
    Array.from({ length: n }, (_, k) => ({
      g: b.g,
      path: `${b.i}.${name}.${k}`,
      steps: b.steps,
    }));
  return [part('a', b.a), part('b', b.b)];
}

export function batchSum(b: BatchInput): number {
  return batchParts(b)
    .flat()
    .reduce((acc, s) => acc + stepsSum(s), 0);
}

export async function chaosBatch(
  input: BatchInput,
  ctx: TaskContext,
  rec: TreeRecorder,
): Promise<number> {
  const tree = new TreeRun(ctx, rec);
  const [a, b] = batchParts(input);
  const first = await tree.spawn<number>('chaosSteps', a, {});
  const second = await tree.spawn<number>('chaosSteps', b, { key: 'more' });
  const values = await Promise.all([tree.wait(first), tree.wait(second)]);
  return values.flat().reduce((acc, v) => acc + v, 0);
}

/** Steps of 80-250 ms, a checkpoint `{ next, acc }` after each; resumes from the last one. */
export async function chaosSteps(input: StepsInput, ctx: TaskContext): Promise<number> {
  const saved = ctx.checkpoint as { next: number; acc: number } | undefined;
  let next = saved?.next ?? 0;
  let acc = saved?.acc ?? 0;
  const failAt =
    spread(`fail:${input.g}:${input.path}`, 0, 2) === 0 ? Math.floor(input.steps / 2) : -1;
  for (; next < input.steps; next++) {
    await sleep(spread(`ms:${input.g}:${input.path}:${next}`, 80, 250), ctx.signal);
    acc += stepValue(input, next);
    await ctx.saveCheckpoint({ next: next + 1, acc });
    if (ctx.attempt === 1 && next === failAt)
      throw new Error(`planned failure of steps ${input.g}:${input.path} at step ${next}`);
  }
  return acc;
}

export function expected(handler: string, input: unknown): unknown {
  switch (handler) {
    case 'chaosTask':
      return expectedValue(input as ChaosInput);
    case 'chaosCrawl':
      return crawlValue(input as CrawlInput);
    case 'chaosTreeSum':
      return treeSumOf(input as TreeInput);
    case 'chaosBatch':
      return batchSum(input as BatchInput);
    case 'chaosSteps':
      return stepsSum(input as StepsInput);
    default:
      return undefined;
  }
}

/** How many tasks a client's group ends with, when its tasks grow it (undefined: as submitted). */
export function expectedTasks(handler: string, inputs: readonly unknown[]): number | undefined {
  return handler === 'chaosCrawl' ? crawlSize(inputs as CrawlInput[]) : undefined;
}
