/**
 * The worker's side of the wire: checks what the coordinator sends (the
 * protocol gives those messages as TypeScript types only, so they are checked
 * here by hand) and packs outgoing messages into frames.
 */
import { parseJson } from '../protocol/json.js';
import type { CoordinatorMessage, WorkerMessage } from '../protocol/worker.js';

export interface ParsedFrame {
  messages: CoordinatorMessage[];
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
        isPosInt(m.maxResultBytes)
        ? null
        : 'welcome needs workerId, token, resumed, heartbeatMs, deadAfterMs, closeGraceMs, maxResultBytes';
    case 'run':
      return hasRef(m) &&
        isStr(m.groupId) &&
        isNonNegInt(m.index) &&
        isStr(m.handler) &&
        'input' in m &&
        isNonNegInt(m.timeoutMs)
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
    case 'revoke':
      return hasRef(m) && ['canceled', 'stale', 'lost'].includes(m.reason as string)
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

/** Parses one frame from the coordinator; malformed messages are reported, never thrown. */
export function parseCoordinatorFrame(text: string): ParsedFrame {
  let data: unknown;
  try {
    data = parseJson(text, 'frame from the coordinator');
  } catch (e) {
    return { messages: [], problems: [(e as Error).message] };
  }
  if (!Array.isArray(data)) {
    return { messages: [], problems: ['frame from the coordinator is not a JSON array'] };
  }
  const out: ParsedFrame = { messages: [], problems: [] };
  data.forEach((m: unknown, i) => {
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
 * `softLimitBytes` each; a message larger than the limit goes alone.
 */
export function packFrames(messages: readonly Encoded[], softLimitBytes: number): string[] {
  const frames: string[] = [];
  let parts: string[] = [];
  let size = 2;
  for (const m of messages) {
    if (parts.length > 0 && size + 1 + m.bytes > softLimitBytes) {
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
