/**
 * The client process of a fault run: submits groups while the nemesis works,
 * waits for every group, and writes what it asked and what it got to its
 * history. argv: <url[,url...]> <history file> <proc name> <params JSON>
 *
 * Groups take turns by number (see `KINDS`): flat groups of chaosTask, and
 * trees (handlers.ts): crawls that grow with ctx.add, tree sums and batches
 * whose tasks spawn child groups and wait on them.
 */
import { Client } from '../../client/index.js';
import type { TaskOptions } from '../../core/types.js';
import { mulberry32 } from '../proxy.js';
import { HistoryWriter } from '../history.js';
import {
  TREE_OPTIONS,
  type BatchInput,
  type ChaosInput,
  type CrawlInput,
  type TreeInput,
} from './handlers.js';

export interface ClientParams {
  seed: number;
  /** Stop submitting at this time (ms since epoch). */
  submitUntil: number;
  /** Give up waiting at this time. */
  waitUntil: number;
  minTasks: number;
  maxTasks: number;
  /** Pause between submits. */
  everyMs: number;
  /** Largest number of groups. */
  maxGroups: number;
  /**
   * Groups submitted and not yet resolved, at most: a closed loop, so the
   * backlog stays bounded however much the faults slow the fleet down, and
   * every group can finish once the faults are healed.
   */
  maxInFlight: number;
  /**
   * Groups whose tasks spawn and wait (tree sums, batches) in flight, at
   * most; a spawning group's turn past it submits a flat group. A waiting
   * parent gives its slot back while it waits, unless the worker's
   * maxSuspended is reached: this bounds the slots parents could hold then.
   */
  maxSpawningInFlight: number;
}

/** The kind of group number g: half flat, a quarter crawls, an eighth each tree sums and batches. */
const KINDS = ['flat', 'crawl', 'flat', 'treeSum', 'flat', 'crawl', 'flat', 'batch'] as const;
type Kind = (typeof KINDS)[number];
const spawns = (kind: Kind): boolean => kind === 'treeSum' || kind === 'batch';

const [url, file, proc, raw] = process.argv.slice(2);
if (!url || !file || !proc || !raw) {
  process.stderr.write(
    'usage: client-main <url[,url...]> <history file> <proc name> <params JSON>\n',
  );
  process.exit(2);
}
const p = JSON.parse(raw) as ClientParams;
const history = new HistoryWriter(file, proc);
const random = mulberry32(p.seed);
const client = new Client({
  url: url.split(','),
  token: process.env['REGROUP_TOKEN'],
  reconnectForMs: 60_000,
  retryMaxMs: 500,
});
const waits: Promise<void>[] = [];
let inFlight = 0;
let spawningInFlight = 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A third of the groups have a timeoutMs, a third a heartbeatTimeoutMs (the
 * handler never heartbeats: its runs are short), the rest no limit: the
 * checker's ran_past_limit judges the runs of the first two, and the
 * coordinator's own deadlines are in play. 2 s is four times the longest task.
 */
function limits(g: number): { timeoutMs?: number; heartbeatTimeoutMs?: number } {
  if (g % 3 === 0) return { timeoutMs: 2000 };
  if (g % 3 === 1) return { heartbeatTimeoutMs: 2000 };
  return {};
}

const between = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));

/** What group number g submits: its handler, inputs and options. */
function plan(
  g: number,
  kind: Kind,
): { handler: string; inputs: unknown[]; options: Partial<TaskOptions> } {
  switch (kind) {
    case 'flat': {
      const n = between(p.minTasks, p.maxTasks);
      const inputs: ChaosInput[] = Array.from({ length: n }, (_, i) => ({
        g,
        i,
        ms: 50 + Math.floor(random() * 450),
      }));
      const options = { maxAttempts: 5, backoffMs: 50, maxNodeFailures: 10, ...limits(g) };
      return { handler: 'chaosTask', inputs, options };
    }
    case 'crawl': {
      // 2-3 roots, 2-3 links a page, 2-3 levels: 14 to 120 pages.
      const fan = between(2, 3);
      const maxDepth = between(2, 3);
      // Crawls take turns: the handler's keys, then the default ones.
      const keyed = (g >> 2) % 2 === 0;
      const inputs: CrawlInput[] = Array.from({ length: between(2, 3) }, (_, i) => ({
        g,
        path: String(i),
        depth: 0,
        maxDepth,
        fan,
        keyed,
      }));
      // The crawl's pages are short: its runs are judged against the limits like a flat group's.
      return { handler: 'chaosCrawl', inputs, options: { ...TREE_OPTIONS, ...limits(g) } };
    }
    case 'treeSum': {
      // 1-2 roots of depth 2, fan-out 2-3: up to 8 parents waiting, 18 leaves.
      const fanout = between(2, 3);
      const inputs: TreeInput[] = Array.from({ length: between(1, 2) }, (_, i) => ({
        g,
        path: String(i),
        depth: 2,
        fanout,
        keyed: i % 2 === 1,
      }));
      return { handler: 'chaosTreeSum', inputs, options: TREE_OPTIONS };
    }
    case 'batch': {
      const inputs: BatchInput[] = Array.from({ length: 2 }, (_, i) => ({
        g,
        i,
        a: between(2, 4),
        b: between(2, 4),
        steps: between(3, 6),
      }));
      return { handler: 'chaosBatch', inputs, options: TREE_OPTIONS };
    }
  }
}

async function one(g: number): Promise<void> {
  let kind: Kind = KINDS[g % KINDS.length]!;
  if (spawns(kind) && spawningInFlight >= p.maxSpawningInFlight) kind = 'flat';
  const { handler, inputs, options } = plan(g, kind);
  const key = `chaos-${p.seed}-${g}`;
  history.write({ type: 'submit.invoke', key, handler, inputs });
  let groupId: string;
  try {
    const group = await client.submit(handler, inputs, { idempotencyKey: key, options });
    groupId = group.id;
    history.write({ type: 'submit.ok', key, groupId });
    const counted = spawns(kind);
    inFlight++;
    if (counted) spawningInFlight++;
    waits.push(
      group
        .waitSettled()
        .finally(() => {
          inFlight--;
          if (counted) spawningInFlight--;
        })
        .then(
          (outcomes) =>
            history.write({
              type: 'wait.ok',
              groupId,
              outcomes: outcomes.map((o) => ({
                index: o.index,
                taskId: o.taskId,
                state: o.state,
                value: o.value,
              })),
            }),
          (e: { code?: string }) =>
            history.write({ type: 'wait.fail', groupId, code: e.code ?? 'unknown' }),
        ),
    );
  } catch (e) {
    history.write({ type: 'submit.fail', key, code: (e as { code?: string }).code ?? 'unknown' });
  }
}

const deadline = setTimeout(() => client.close(), Math.max(0, p.waitUntil - Date.now()));
for (let g = 0; g < p.maxGroups && Date.now() < p.submitUntil; g++) {
  while (inFlight >= p.maxInFlight && Date.now() < p.submitUntil) await sleep(100);
  if (Date.now() >= p.submitUntil) break;
  await one(g);
  await sleep(p.everyMs * (0.5 + random()));
}
await Promise.all(waits);
clearTimeout(deadline);
client.close();
process.stdout.write(`${proc} done\n`);
