import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegroupError } from '../core/errors.js';
import { parseJson } from '../protocol/validate.js';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, e: unknown): void {
  const err =
    e instanceof RegroupError
      ? e
      : new RegroupError('internal', `internal error: ${(e as Error)?.message ?? String(e)}`);
  sendJson(res, err.status, err.toWire());
}

/** Reads a JSON body of at most maxBytes. Refusals name the limit and how to raise it. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new RegroupError(
      'unsupported_media_type',
      `send the body as JSON with "Content-Type: application/json" (got "${type || 'none'}")`,
    );
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    throw tooLarge(maxBytes);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      req.resume();
      throw tooLarge(maxBytes);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.length === 0)
    throw new RegroupError('invalid_json', 'the request body is empty; send a JSON object');
  return parseJson(text, 'the request body');
}

function tooLarge(maxBytes: number): RegroupError {
  return new RegroupError(
    'body_too_large',
    `the request body is larger than ${maxBytes} bytes (maxBodyBytes); split the request or start the server with a larger --max-body-bytes`,
  );
}

/** Parses a request target; one that is not a valid URL path (`//`, `//@`) is a 404, never a crash. */
export function requestUrl(raw: string | undefined): URL {
  try {
    return new URL(raw ?? '/', 'http://x');
  } catch {
    throw new RegroupError(
      'not_found',
      `no route for "${String(raw).slice(0, 100)}"; see docs/protocol.md for the API`,
    );
  }
}

/** An integer query parameter within [min, max], or the default; anything else is a clear 400. */
export function intParam(
  q: URLSearchParams,
  name: string,
  def: number,
  min: number,
  max: number,
): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RegroupError(
      'validation_failed',
      `query parameter ${name} must be an integer from ${min} to ${max}, got "${raw.slice(0, 50)}"`,
    );
  }
  return n;
}
