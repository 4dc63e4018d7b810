import { Command, Option } from 'commander';
import type { Client, Group, GroupView, Outcome, TaskOptionsInput } from '../client/index.js';
import {
  EXIT,
  integer,
  makeClient,
  reportError,
  withConnectionOptions,
  writeLines,
  type ConnectionOptions,
} from './common.js';
import { RegroupError } from '../core/errors.js';
import { readInputs } from './jsonl.js';
import { createProgress, type Progress } from './progress.js';
import { waitingLine, waitingLines } from './views.js';

interface SubmitFlags extends ConnectionOptions {
  handler: string;
  file?: string;
  idempotencyKey?: string;
  maxAttempts?: number;
  timeoutMs?: number;
  heartbeatTimeoutMs?: number;
  scheduleTimeoutMs?: number;
  maxConcurrency?: number;
  concurrencyKey?: string;
  concurrencyKeyLimit?: number;
  priority?: number;
  requires?: string[];
  policy?: 'collectAll' | 'failFast';
  allowEmpty?: boolean;
  wait: boolean;
}

export function submitCommand(): Command {
  const cmd = new Command('submit')
    .description(
      'submit a group: one task per JSON Lines input (--file or stdin); print the results as ' +
        'JSON Lines in input order. Exit 0 when all succeeded, 1 when any failed, 2 on errors.',
    )
    .requiredOption('--handler <name>', 'handler to run (an export of the worker module)')
    .option('--file <path.jsonl>', 'inputs, one JSON value per line (default: stdin)')
    .option('--idempotency-key <key>', 'submitting again with this key returns the same group')
    .option('--max-attempts <n>', 'attempts per task before it fails', integer(1))
    .option('--timeout-ms <n>', 'abort a run after this long (0 = no limit)', integer(0))
    .option(
      '--heartbeat-timeout-ms <n>',
      'end a run that shows no progress (ctx.heartbeat, a checkpoint) for this long (0 = not watched)',
      integer(0),
    )
    .option(
      '--schedule-timeout-ms <n>',
      'fail the tasks as unschedulable when no connected worker can run them for this long (0 = wait)',
      integer(0),
    )
    .option(
      '--max-concurrency <n>',
      "most of the group's tasks running at once; the rest wait (0 = no cap)",
      integer(0),
    )
    .option(
      '--concurrency-key <key>',
      'a limit shared with every group naming this key (set by the coordinator or --concurrency-key-limit)',
    )
    .option(
      '--concurrency-key-limit <n>',
      "the key's limit this group proposes, if the coordinator sets none",
      integer(1),
    )
    .option('--priority <n>', 'groups of a higher priority are served first', integer(-1_000_000))
    .option(
      '--requires <labels>',
      'comma-separated worker labels every task needs (workers started with --labels)',
      (v: string) =>
        v
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== ''),
    )
    .addOption(
      new Option('--policy <policy>', 'on failure: collect all results or cancel the rest').choices(
        ['collectAll', 'failFast'],
      ),
    )
    .option(
      '--allow-empty',
      'submit a group of no tasks when there are no inputs (default: an error)',
    )
    .option('--no-wait', 'print the group id (with --json, the group) and exit');
  withConnectionOptions(cmd).addHelpText(
    'after',
    '\nWhile no connected worker can run the group, a line says why on stderr (`waiting: ...`).' +
      '\nWith --json, each result line is the full outcome (taskId and attempt too); errors are ' +
      'JSON on stderr, and so is why the group waits: {"groupId","waiting":{code,message,since}|null}.',
  );
  return cmd.action(async (flags: SubmitFlags) => {
    process.exitCode = await runSubmit(flags);
  });
}

export async function runSubmit(flags: SubmitFlags): Promise<number> {
  let client: Client | undefined;
  try {
    const inputs = await readInputs(flags.file);
    if (inputs.length === 0 && flags.allowEmpty !== true) {
      throw new RegroupError(
        'bad_request',
        `no inputs: ${flags.file ?? 'stdin'} holds no JSON lines, so there is nothing to run; ` +
          'write one JSON value per line (one task each), or pass --allow-empty for a group of no tasks',
      );
    }
    client = makeClient(flags);
    const options: TaskOptionsInput = {};
    if (flags.maxAttempts !== undefined) options.maxAttempts = flags.maxAttempts;
    if (flags.timeoutMs !== undefined) options.timeoutMs = flags.timeoutMs;
    if (flags.heartbeatTimeoutMs !== undefined)
      options.heartbeatTimeoutMs = flags.heartbeatTimeoutMs;
    if (flags.scheduleTimeoutMs !== undefined) options.scheduleTimeoutMs = flags.scheduleTimeoutMs;
    if (flags.maxConcurrency !== undefined) options.maxConcurrency = flags.maxConcurrency;
    if (flags.concurrencyKey !== undefined) options.concurrencyKey = flags.concurrencyKey;
    if (flags.concurrencyKeyLimit !== undefined)
      options.concurrencyKeyLimit = flags.concurrencyKeyLimit;
    if (flags.priority !== undefined) options.priority = flags.priority;
    if (flags.requires !== undefined) options.requires = flags.requires;
    const group = await client.submit(flags.handler, inputs, {
      ...(flags.idempotencyKey === undefined ? {} : { idempotencyKey: flags.idempotencyKey }),
      ...(flags.policy === undefined ? {} : { policy: flags.policy }),
      ...(Object.keys(options).length === 0 ? {} : { options }),
    });
    process.stderr.write(
      flags.json
        ? `${JSON.stringify({ groupId: group.id, tasks: inputs.length })}\n`
        : `group ${group.id}: ${inputs.length} ${inputs.length === 1 ? 'task' : 'tasks'}\n`,
    );
    if (!flags.wait) {
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(await group.status())}\n`);
        return EXIT.ok;
      }
      // The view says at once whether a connected worker can run the group; the id is printed anyway.
      const view = await group.status().catch(() => null);
      if (view?.waiting) writeStderr(waitingLines(view, view.waiting, Date.now()));
      process.stdout.write(`${group.id}\n`);
      return EXIT.ok;
    }
    const stop = closeOnInterrupt(client, group.id);
    const outcomes = await collect(group, inputs.length, flags.json === true).finally(stop);
    await writeLines(
      process.stdout,
      outcomes.map((o) => resultLine(o, flags.json === true)),
    );
    return outcomes.every((o) => o.state === 'succeeded') ? EXIT.ok : EXIT.taskFailed;
  } catch (e) {
    // Closed here only by Ctrl-C (closeOnInterrupt): the conventional 128 + SIGINT.
    if (e instanceof RegroupError && e.code === 'closed') return EXIT.interrupted;
    return reportError(e, flags.json);
  } finally {
    client?.close();
  }
}

/**
 * Follows the group as its tasks finish (progress on stderr, and why it
 * waits while no connected worker can run it); returns the outcomes in input order.
 */
async function collect(group: Group, total: number, json: boolean): Promise<Outcome[]> {
  const progress = json ? undefined : createProgress(total);
  const unfollow = followWaiting(group, progress ? waitingShown(progress) : waitingJson);
  const byIndex: Outcome[] = [];
  let finished = 0;
  let failed = 0;
  try {
    for await (const o of group.results()) {
      if (byIndex[o.index] === undefined) finished++;
      if (o.state !== 'succeeded') failed++;
      byIndex[o.index] = o;
      progress?.update(finished, failed);
    }
  } finally {
    unfollow();
    progress?.stop();
  }
  // The stream gives every task once; should it not (a group resubmitted by key
  // with other inputs, say), the paged, input-ordered read is the authority.
  const complete = byIndex.length === total && finished === total;
  return complete ? byIndex : group.waitSettled();
}

/** How often submit asks for its group's view while it waits: the results stream does not say why a group waits. */
export const WAITING_POLL_MS = 2000;

/**
 * Asks for the group's view at once, then every `everyMs` until stopped or
 * the group is done, and calls `changed` when the group starts waiting, waits
 * for another reason, or no longer waits. A failed request is left to the
 * results stream (it retries the coordinator and reports what it cannot
 * cure); the next one is asked for `everyMs` later. Returns the stop.
 */
export function followWaiting(
  group: Pick<Group, 'status'>,
  changed: (g: GroupView) => void,
  everyMs = WAITING_POLL_MS,
): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let shown = '';
  const poll = async (): Promise<void> => {
    try {
      const g = await group.status();
      if (stopped) return;
      const key = g.waiting ? `${g.waiting.code}\n${g.waiting.message}` : '';
      if (key !== shown) {
        shown = key;
        changed(g);
      }
      if (g.done) return;
    } catch {
      if (stopped) return;
    }
    timer = setTimeout(() => void poll(), everyMs);
    timer.unref();
  };
  void poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Why the group waits, in the progress display: printed once, and in the bar while it lasts. */
function waitingShown(progress: Progress): (g: GroupView) => void {
  return (g) =>
    progress.waiting(
      g.waiting
        ? { lines: waitingLines(g, g.waiting, Date.now()), reason: waitingLine(g.waiting) }
        : null,
    );
}

/** With --json: why the group waits, as JSON on stderr; `"waiting":null` when it no longer does. */
export function waitingJsonLine(g: Pick<GroupView, 'id' | 'waiting'>): string {
  return JSON.stringify({ groupId: g.id, waiting: g.waiting ?? null });
}

function waitingJson(g: GroupView): void {
  writeStderr([waitingJsonLine(g)]);
}

function writeStderr(lines: readonly string[]): void {
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** `{"index":0,"state":"succeeded","value":1}`; with --json the whole outcome. */
export function resultLine(o: Outcome, full: boolean): string {
  if (full) return JSON.stringify(o);
  const line: Record<string, unknown> = { index: o.index, state: o.state };
  if (o.state === 'succeeded') line.value = o.value ?? null;
  if (o.error !== undefined) line.error = o.error;
  return JSON.stringify(line);
}

/** Ctrl-C stops waiting (the group keeps running on the coordinator). */
function closeOnInterrupt(client: Client, groupId: string): () => void {
  const onSigint = (): void => {
    process.stderr.write(
      `\nstopped waiting; group ${groupId} keeps running (regroup status ${groupId})\n`,
    );
    client.close();
  };
  process.once('SIGINT', onSigint);
  return () => process.off('SIGINT', onSigint);
}
