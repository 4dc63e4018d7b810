/**
 * What ctx.add checks before anything is sent (docs/handlers.md, "Adding
 * tasks: ctx.add"): the call's shape, its options, its key, and its inputs
 * as JSON within the limits the worker knows. The coordinator checks the
 * inputs again against the limits of a client's add (maxTasksPerRequest,
 * maxInputBytes) and answers a refusal in `added`.
 */
import { RegroupError } from '../core/errors.js';
import { ADD_KEY_MAX } from '../protocol/worker.js';
import { jsonOf, type ResultLimits } from './json-value.js';

/** The options of ctx.add. */
export interface AddOptions {
  /**
   * Names this add within its task, across the task's attempts: an add
   * repeated under a key (a run of the task again) adds nothing and resolves
   * with the first add's indexes. Default `#0`, `#1`, ...: the position of
   * the call among this run's adds without a key. At most 200 characters;
   * keys starting with `#` are the default ones.
   */
  key?: string;
  /**
   * Only the group's own handler. Tasks of another handler need a group of
   * their own: ctx.spawn(handler, inputs).
   */
  handler?: string;
}

/** The run as ctx.add sees it. */
export interface AddingRun {
  taskId: number;
  handler: string;
  /** The number the next add without a key takes (`#n`); moved on here. */
  nextAutoKey: number;
}

const OPTION_NAMES: ReadonlySet<string> = new Set(['key', 'handler']);

/** What a value is, for an error message: `null`, `an array`, `an object`, `a string`... */
export function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x === 'object' ? 'an object' : `a ${typeof x}`;
}

function checkOptions(run: AddingRun, options: unknown): AddOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new RegroupError(
      'validation_failed',
      `ctx.add(inputs, options): options must be an object ({ key }), got ${describe(options)}`,
    );
  const o = options as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (!OPTION_NAMES.has(name))
      throw new RegroupError(
        'validation_failed',
        `ctx.add has no option ${JSON.stringify(name)} (it takes key, and handler when it is the group's own)`,
      );
  }
  if (o.handler !== undefined && o.handler !== run.handler)
    throw new RegroupError(
      'bad_request',
      `ctx.add adds tasks of this group's handler (${JSON.stringify(run.handler)}); tasks of another handler (${JSON.stringify(o.handler)}) need a group of their own: ctx.spawn(${JSON.stringify(o.handler)}, inputs)`,
    );
  if (o.key !== undefined) checkKey('ctx.add', o.key);
  return o;
}

/** A key the handler gives to ctx.add or ctx.spawn: 1 to ADD_KEY_MAX characters, not starting with `#`. */
export function checkKey(what: string, k: unknown): void {
  if (typeof k !== 'string' || k.length === 0 || k.length > ADD_KEY_MAX)
    throw new RegroupError(
      'validation_failed',
      `${what}'s key must be a string of 1 to ${ADD_KEY_MAX} characters, got ${typeof k === 'string' ? `${k.length} characters` : describe(k)}`,
    );
  if (k.startsWith('#'))
    throw new RegroupError(
      'validation_failed',
      `${what}'s key ${JSON.stringify(k.slice(0, 50))} starts with #: those are the default keys (#0, #1, ...); use another`,
    );
}

/**
 * The add's key and its inputs as JSON text, or a RegroupError saying what
 * is wrong (nothing is sent then, and no default key is used up). The
 * inputs travel as one JSON array, bounded by maxResultBytes like a result
 * (the one message size the worker knows); each input may nest maxDepth - 1
 * levels (the array is one).
 */
export function prepareAdd(
  run: AddingRun,
  inputs: unknown,
  options: unknown,
  limits: ResultLimits,
): { key: string; inputsJson: string } {
  if (!Array.isArray(inputs))
    throw new RegroupError(
      'validation_failed',
      `ctx.add(inputs) takes an array of inputs, got ${describe(inputs)}`,
    );
  const o = checkOptions(run, options);
  const inputsJson = callInputsJson('ctx.add', run.taskId, inputs, limits);
  const key = o.key ?? `#${run.nextAutoKey++}`;
  return { key, inputsJson };
}

/**
 * The inputs of a ctx.add or ctx.spawn as JSON text within the limits the
 * worker knows, or the RegroupError saying what to change (too_deep names
 * the levels left under the message's own inputs array).
 */
export function callInputsJson(
  call: 'ctx.add' | 'ctx.spawn',
  taskId: number,
  inputs: unknown[],
  limits: ResultLimits,
): string {
  const owner = `the inputs of ${call} in task ${taskId}`;
  const json = jsonOf(inputs, { root: 'inputs', owner }, limits);
  if (json.ok) return json.text;
  const message =
    json.code === 'too_deep'
      ? `an input of ${call} in task ${taskId} nests deeper than ${limits.maxDepth - 1} levels (maxDepth ${limits.maxDepth}, less the inputs array); use flatter data, or raise the coordinator's --max-json-depth`
      : json.message;
  throw new RegroupError(json.code, message);
}
