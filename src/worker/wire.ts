/**
 * The worker's side of the wire: checks what the coordinator sends (the
 * protocol gives those messages as TypeScript types only, so they are checked
 * here by hand) and packs outgoing messages into frames.
 */
import { parseFrame, TooDeepMessage } from '../protocol/json.js';
import { DEFAULT_LIMITS } from '../protocol/limits.js';
import { deeperThan } from './json-value.js';
import {
  MAX_FRAME_MESSAGES,
  type CoordinatorMessage,
  type WorkerMessage,
} from '../protocol/worker.js';

/**
 * A run this worker could not read: its input or checkpoint nests deeper
 * than maxDepth. Made by parseCoordinatorFrame, never sent on the wire; the
 * worker fails the run for good, so the task does not wait forever.
 */
export interface UnreadableRun {
  t: 'unreadable';
  taskId: number;
  attempt: number;
  message: string;
}

/** What the worker acts on: the coordinator's messages and the runs it could not read. */
export type Inbound = CoordinatorMessage | UnreadableRun;

export interface ParsedFrame {
  messages: Inbound[];
  /** One line per message (or the whole frame) that was malformed and ignored. */
  problems: string[];
}

type Obj = Record<string, unknown>;

const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const isPosInt = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 1;
const isNonNegInt = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;
const isStr = (x: unknown): x is string => typeof x === 'string';

function hasRef(m: Obj): boolean {
  return isPosInt(m.taskId) && isPosInt(m.attempt);
}

/** The fields every answer to an add, a spawn or a handle's call has: its run, seq and ok, and a code and message when given. */
function isAnswer(m: Obj): boolean {
  return (
    hasRef(m) &&
    isNonNegInt(m.seq) &&
    typeof m.ok === 'boolean' &&
    (m.code === undefined || isStr(m.code)) &&
    (m.message === undefined || isStr(m.message))
  );
}

/** Why message `m` is malformed, or null when it is a well-formed coordinator message. */
export function problemOf(m: unknown): string | null {
  if (!isObj(m) || !isStr(m.t)) return 'not an object with a string field t';
  switch (m.t) {
    case 'welcome':
      return isStr(m.workerId) &&
        m.workerId !== '' &&
        isStr(m.token) &&
        typeof m.resumed === 'boolean' &&
        isPosInt(m.heartbeatMs) &&
        isPosInt(m.deadAfterMs) &&
        isNonNegInt(m.closeGraceMs) &&
        isPosInt(m.maxResultBytes) &&
        isPosInt(m.maxDepth) &&
        (m.slots === undefined || isPosInt(m.slots))
        ? null
        : 'welcome needs workerId, token, resumed, heartbeatMs, deadAfterMs, closeGraceMs, maxResultBytes, maxDepth';
    case 'run':
      return hasRef(m) &&
        isStr(m.groupId) &&
        isNonNegInt(m.index) &&
        isStr(m.handler) &&
        'input' in m &&
        isNonNegInt(m.timeoutMs) &&
        (m.heartbeatTimeoutMs === undefined || isNonNegInt(m.heartbeatTimeoutMs))
        ? null
        : 'run needs taskId, attempt, groupId, index, handler, input, timeoutMs';
    case 'ack':
      return hasRef(m) && ['committed', 'already_final', 'stale'].includes(m.status as string)
        ? null
        : 'ack needs taskId, attempt and a status';
    case 'saved':
      return hasRef(m) && isNonNegInt(m.seq) && typeof m.ok === 'boolean'
        ? null
        : 'saved needs taskId, attempt, seq, ok';
    case 'added':
      return isAnswer(m) && (m.ok ? isNonNegInt(m.first) && isNonNegInt(m.count) : true)
        ? null
        : 'added needs taskId, attempt, seq, ok (and first, count when ok)';
    case 'spawned':
      return isAnswer(m) && (m.ok ? isStr(m.groupId) : true)
        ? null
        : 'spawned needs taskId, attempt, seq, ok (and groupId when ok)';
    case 'group_reply':
      return isAnswer(m) ? null : 'group_reply needs taskId, attempt, seq, ok';
    case 'resumed':
      return hasRef(m) &&
        isNonNegInt(m.seq) &&
        typeof m.ok === 'boolean' &&
        (m.code === undefined || isStr(m.code))
        ? null
        : 'resumed needs taskId, attempt, seq, ok';
    case 'revoke':
      return hasRef(m) &&
        ['canceled', 'stale', 'lost', 'timeout'].includes(m.reason as string) &&
        (m.message === undefined || isStr(m.message))
        ? null
        : 'revoke needs taskId, attempt and a reason';
    case 'beat':
      return null;
    case 'error':
      return isStr(m.code) && isStr(m.message) ? null : 'error needs code and message';
    default:
      return `unknown message type ${JSON.stringify(m.t).slice(0, 50)}`;
  }
}

/**
 * A group_reply carries a group's tasks, whose results sit this many levels
 * below the message's own level: body, tasks, the task, its value. The
 * worker reads coordinator frames this much deeper than maxDepth, so a reply
 * with results as deep as the limit allows is read.
 */
export const GROUP_REPLY_DEPTH = 4;

/** A message too deep to parse: a run becomes an UnreadableRun, a group_reply a refusal; anything else is a problem. */
function unreadable(
  m: TooDeepMessage,
  maxDepth: number,
): UnreadableRun | CoordinatorMessage | string {
  const { t, taskId, attempt, seq } = m.fields;
  if (t === 'group_reply' && isPosInt(taskId) && isPosInt(attempt) && isNonNegInt(seq))
    return {
      t: 'group_reply',
      taskId,
      attempt,
      seq,
      ok: false,
      code: 'too_deep',
      message: `the coordinator's answer nests deeper than this worker reads (maxDepth ${maxDepth}): give the coordinator and its workers the same --max-json-depth`,
    };
  if (t !== 'run' || !isPosInt(taskId) || !isPosInt(attempt)) return m.error.message;
  return unreadableRun(taskId, attempt, maxDepth);
}

function unreadableRun(taskId: number, attempt: number, maxDepth: number): UnreadableRun {
  return {
    t: 'unreadable',
    taskId,
    attempt,
    message: `the run of task ${taskId} attempt ${attempt} carries an input or checkpoint nested deeper than ${maxDepth} levels (maxDepth), which this worker does not read: flatten the input, and give the coordinator and its workers the same --max-json-depth`,
  };
}

/**
 * Frames are read GROUP_REPLY_DEPTH levels deeper than maxDepth for the
 * sake of group replies; a run's input and checkpoint are still held to
 * maxDepth itself, as the coordinator holds them when they are submitted.
 */
function deepRunOf(m: unknown, maxDepth: number): UnreadableRun | null {
  if (typeof m !== 'object' || m === null) return null;
  const { t, taskId, attempt, input, checkpoint } = m as Record<string, unknown>;
  if (t !== 'run' || !isPosInt(taskId) || !isPosInt(attempt)) return null;
  if (!deeperThan(input, maxDepth) && !deeperThan(checkpoint, maxDepth)) return null;
  return unreadableRun(taskId, attempt, maxDepth);
}

/**
 * Parses one frame from the coordinator; malformed messages are reported,
 * never thrown, and never take the rest of the frame with them. `maxDepth`
 * is the coordinator's limit on inputs and checkpoints (its welcome says it);
 * a run message wraps them in one level and the frame in one more, which
 * parseFrame adds. Nothing here recurses on the data: no frame, however
 * deep, overflows the stack. The count of messages is not capped: the
 * coordinator is trusted for that, and counting costs nothing to skip.
 */
export function parseCoordinatorFrame(
  text: string,
  maxDepth: number = DEFAULT_LIMITS.maxDepth,
): ParsedFrame {
  let data: unknown;
  try {
    data = parseFrame(text, 'frame from the coordinator', {
      maxDepth: maxDepth + GROUP_REPLY_DEPTH,
      maxMessages: Infinity,
    });
  } catch (e) {
    return { messages: [], problems: [(e as Error).message] };
  }
  if (!Array.isArray(data)) {
    return { messages: [], problems: ['frame from the coordinator is not a JSON array'] };
  }
  const out: ParsedFrame = { messages: [], problems: [] };
  data.forEach((m: unknown, i) => {
    if (m instanceof TooDeepMessage) {
      const run = unreadable(m, maxDepth);
      if (typeof run === 'string') out.problems.push(`message ${i}: ${run}`);
      else out.messages.push(run);
      return;
    }
    const deepRun = deepRunOf(m, maxDepth);
    if (deepRun !== null) {
      out.messages.push(deepRun);
      return;
    }
    const problem = problemOf(m);
    if (problem === null) out.messages.push(m as CoordinatorMessage);
    else out.problems.push(`message ${i}: ${problem}`);
  });
  return out;
}

/** A message already turned into JSON text, with its size, ready to go into a frame. */
export interface Encoded {
  text: string;
  bytes: number;
}

export function encode(m: WorkerMessage): Encoded {
  const text = JSON.stringify(m);
  return { text, bytes: Buffer.byteLength(text) };
}

/**
 * Packs encoded messages, in order, into JSON-array frames of at most
 * `softLimitBytes` and at most `maxMessages` messages (the coordinator's cap) each; a message
 * larger than the limit goes alone.
 */
export function packFrames(
  messages: readonly Encoded[],
  softLimitBytes: number,
  maxMessages: number = MAX_FRAME_MESSAGES,
): string[] {
  const frames: string[] = [];
  let parts: string[] = [];
  let size = 2;
  for (const m of messages) {
    if (parts.length > 0 && (size + 1 + m.bytes > softLimitBytes || parts.length >= maxMessages)) {
      frames.push(`[${parts.join(',')}]`);
      parts = [];
      size = 2;
    }
    parts.push(m.text);
    size += m.bytes + 1;
  }
  if (parts.length > 0) frames.push(`[${parts.join(',')}]`);
  return frames;
}
