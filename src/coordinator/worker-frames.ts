/**
 * Decoding a frame that arrived on a worker socket: JSON text, an array of
 * messages. The messages themselves are checked one by one by the gateway.
 */
import type { RawData } from 'ws';
import { RegroupError } from '../core/errors.js';
import { parseJson } from '../protocol/validate.js';
import { workerFrame } from '../protocol/worker.js';
import type { Limits } from '../protocol/limits.js';

/** The frame's messages, unchecked; throws RegroupError (`protocol_error`, ...) for a frame that is not a JSON array. */
export function decodeWorkerFrame(data: RawData, isBinary: boolean, _limits: Limits): unknown[] {
  if (isBinary) throw new RegroupError('protocol_error', 'frames are JSON text, not binary');
  const text = Array.isArray(data)
    ? Buffer.concat(data).toString('utf8')
    : Buffer.from(data as ArrayBuffer).toString('utf8');
  return workerFrame.parse(parseJson(text, 'frame'), 'frame (a JSON array of messages)');
}
