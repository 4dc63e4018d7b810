/**
 * Decoding a frame that arrived on a worker socket: JSON text, an array of
 * messages. The messages themselves are checked one by one by the gateway.
 */
import type { RawData } from 'ws';
import { RegroupError } from '../core/errors.js';
import { parseFrame } from '../protocol/json.js';
import { MAX_FRAME_MESSAGES, workerFrame } from '../protocol/worker.js';
import type { Limits } from '../protocol/limits.js';

/**
 * The frame's messages, unchecked; throws RegroupError (`protocol_error`,
 * `too_deep`, ...) for a frame that is not a JSON array, holds more than
 * MAX_FRAME_MESSAGES messages (counted on the text, before parsing) or is
 * too deep as a whole. Depth: a result or checkpoint may nest
 * `limits.maxDepth` levels; its message wraps it in one more level and the
 * frame in another, so the frame may be maxDepth + 2 deep (parseFrame adds
 * the two). A message deeper than that comes back as a TooDeepMessage in
 * its place, so the gateway can fail that one run and keep the others.
 */
export function decodeWorkerFrame(data: RawData, isBinary: boolean, limits: Limits): unknown[] {
  if (isBinary) throw new RegroupError('protocol_error', 'frames are JSON text, not binary');
  const text = Array.isArray(data)
    ? Buffer.concat(data).toString('utf8')
    : Buffer.from(data as ArrayBuffer).toString('utf8');
  const parsed = parseFrame(text, 'frame', {
    maxDepth: limits.maxDepth,
    maxMessages: MAX_FRAME_MESSAGES,
  });
  return workerFrame.parse(parsed, 'frame (a JSON array of messages)');
}
