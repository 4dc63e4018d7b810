/**
 * The client process of a fault run: submits groups of chaosTask tasks while
 * the nemesis works, waits for every group, and writes what it asked and what
 * it got to its history. argv: <url[,url...]> <history file> <proc name> <params JSON>
 */
import { Client } from '../../client/index.js';
import { mulberry32 } from '../proxy.js';
import { HistoryWriter } from '../history.js';
import type { ChaosInput } from './handlers.js';

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
}

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

async function one(g: number): Promise<void> {
  const n = p.minTasks + Math.floor(random() * (p.maxTasks - p.minTasks + 1));
  const inputs: ChaosInput[] = Array.from({ length: n }, (_, i) => ({
    g,
    i,
    ms: 50 + Math.floor(random() * 450),
  }));
  const key = `chaos-${p.seed}-${g}`;
  history.write({ type: 'submit.invoke', key, handler: 'chaosTask', inputs });
  let groupId: string;
  try {
    const group = await client.submit('chaosTask', inputs, {
      idempotencyKey: key,
      options: { maxAttempts: 5, backoffMs: 50, maxNodeFailures: 10, ...limits(g) },
    });
    groupId = group.id;
    history.write({ type: 'submit.ok', key, groupId });
    inFlight++;
    waits.push(
      group
        .waitSettled()
        .finally(() => inFlight--)
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
