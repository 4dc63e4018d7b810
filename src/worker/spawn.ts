/**
 * What ctx.spawn checks before anything is sent (docs/handlers.md, "Child
 * groups: ctx.spawn"): the handler's name, the options (by the protocol's own
 * schema, so the coordinator never refuses the message as malformed), the key,
 * and the inputs as JSON within the limits the worker knows. The coordinator
 * checks the inputs again against a client submit's limits.
 */
import { RegroupError } from '../core/errors.js';
import type { GroupPolicy, TaskOptions } from '../core/types.js';
import { Spawn } from '../protocol/worker.js';
import { checker } from '../protocol/validate.js';
import { callInputsJson, checkKey, describe } from './add.js';
import type { ResultLimits } from './json-value.js';

/** The options of ctx.spawn. */
export interface SpawnOptions {
  /**
   * Names this spawn within its task, across the task's attempts: a spawn
   * repeated under a key (a run of the task again) creates nothing and
   * resolves with the first spawn's group. Default `#0`, `#1`, ...: the
   * position of the call among this run's spawns without a key. At most 200
   * characters; keys starting with `#` are the default ones.
   */
  key?: string;
  /** The child group's policy, as a client's submit takes it. Default collectAll. */
  policy?: GroupPolicy;
  /** The child's task options (maxAttempts, timeoutMs, ...), as a client's submit takes them. */
  options?: Partial<TaskOptions>;
  /**
   * The child outlives its parent task's final failure (by default that
   * failure cancels the children it spawned). A cancel of an ancestor group
   * still cancels it.
   */
  keepChildren?: boolean;
}

/** The run as ctx.spawn sees it. */
export interface SpawningRun {
  taskId: number;
  attempt: number;
  /** The number the next spawn without a key takes (`#n`); moved on here. */
  nextAutoKey: number;
}

const OPTION_NAMES: ReadonlySet<string> = new Set(['key', 'policy', 'options', 'keepChildren']);
const spawnMessage = checker(Spawn, 'validation_failed');

/**
 * The spawn's key, the message's fields other than its inputs, and its
 * inputs as JSON text; or a RegroupError saying what is wrong (nothing is
 * sent then, and no default key is used up).
 */
export function prepareSpawn(
  run: SpawningRun,
  handler: unknown,
  inputs: unknown,
  options: unknown,
  limits: ResultLimits,
): { key: string; head: Record<string, unknown>; inputsJson: string } {
  if (typeof handler !== 'string')
    throw new RegroupError(
      'validation_failed',
      `ctx.spawn(handler, inputs) takes the child's handler name first, got ${describe(handler)}`,
    );
  if (!Array.isArray(inputs))
    throw new RegroupError(
      'validation_failed',
      `ctx.spawn(handler, inputs) takes an array of inputs, got ${describe(inputs)}`,
    );
  let o: Record<string, unknown> = {};
  if (options !== undefined) {
    if (typeof options !== 'object' || options === null || Array.isArray(options))
      throw new RegroupError(
        'validation_failed',
        `ctx.spawn(handler, inputs, options): options must be an object ({ key, policy, options, keepChildren }), got ${describe(options)}`,
      );
    o = options as Record<string, unknown>;
    for (const name of Object.keys(o)) {
      if (!OPTION_NAMES.has(name))
        throw new RegroupError(
          'validation_failed',
          `ctx.spawn has no option ${JSON.stringify(name)} (it takes key, policy, options, keepChildren)`,
        );
    }
    if (o.key !== undefined) checkKey('ctx.spawn', o.key);
  }
  const head: Record<string, unknown> = { handler };
  if (o.policy !== undefined) head.policy = o.policy;
  if (o.options !== undefined) head.options = o.options;
  if (o.keepChildren !== undefined) head.keepChildren = o.keepChildren;
  // The message without its inputs, by the protocol's schema: a bad name, policy or option is named here.
  const probe = { t: 'spawn', taskId: run.taskId, attempt: run.attempt, seq: 0, key: '#0' };
  try {
    spawnMessage.parse({ ...probe, ...head, inputs: [] }, 'ctx.spawn');
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new RegroupError('validation_failed', message);
  }
  const inputsJson = callInputsJson('ctx.spawn', run.taskId, inputs, limits);
  const key = (o.key as string | undefined) ?? `#${run.nextAutoKey++}`;
  return { key, head, inputsJson };
}
