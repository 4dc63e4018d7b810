import { RegroupError } from '../core/errors.js';

/** What a user passes to `new Client(...)`. */
export interface ClientOptions {
  /** One coordinator URL, or several: tried in turn, sticking to the one that answers. */
  url: string | string[];
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Limit of one ordinary request. Long polls get their poll time plus `LONG_POLL_SLACK_MS`. */
  requestTimeoutMs?: number;
  /** Smallest delay between retries. */
  retryMinMs?: number;
  /** Largest delay between retries. */
  retryMaxMs?: number;
  /**
   * How long submit, add, seal, cancel and status keep retrying through
   * connection errors and 503s. wait, waitSettled and results retry forever.
   */
  reconnectForMs?: number;
  /** Most inputs sent in one request; larger groups are sent in chunks. */
  chunkSize?: number;
  /**
   * Called each time a request failed transiently (no connection, no reply,
   * a 503) and the client waits before trying again: a command line can say
   * at once that the coordinator is not answering instead of staying silent
   * for `reconnectForMs`. Errors it throws are ignored.
   */
  onRetry?: (info: RetryInfo) => void;
}

/** What `onRetry` is told. */
export interface RetryInfo {
  /** The failure that will be retried (`connection_failed`, `unavailable`, ...). */
  error: RegroupError;
  /** Retries of this request so far, this one included. */
  retry: number;
  /** The wait before the next try. */
  delayMs: number;
  /** How long this request has been failing. */
  elapsedMs: number;
  /** How long it keeps trying in all (`Infinity` for waits). */
  forMs: number;
}

/** Every option set. */
export interface ResolvedClientOptions {
  urls: string[];
  token: string | null;
  requestTimeoutMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  reconnectForMs: number;
  chunkSize: number;
  onRetry: ((info: RetryInfo) => void) | null;
}

export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  requestTimeoutMs: 30_000,
  retryMinMs: 100,
  retryMaxMs: 2_000,
  reconnectForMs: 60_000,
  chunkSize: 10_000,
});

/** Server-side wait of one long poll (`/wait`, `/finished`). */
export const LONG_POLL_MS = 30_000;
/** A long poll's request limit is its poll time plus this. */
export const LONG_POLL_SLACK_MS = 5_000;

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RegroupError('validation_failed', `client option ${name} must be a number >= 0`);
  }
  return value;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RegroupError('validation_failed', `client option ${name} must be an integer >= 1`);
  }
  return value;
}

export function normalizeUrls(url: string | string[]): string[] {
  const list = (Array.isArray(url) ? url : [url]).map((u) => u.trim().replace(/\/+$/, ''));
  if (list.length === 0 || list.some((u) => !/^https?:\/\/[^/]/.test(u))) {
    throw new RegroupError(
      'validation_failed',
      `client option url must be one or more http(s) URLs, got ${JSON.stringify(url)}`,
    );
  }
  return list;
}

export function resolveClientOptions(given: ClientOptions): ResolvedClientOptions {
  const d = DEFAULT_CLIENT_OPTIONS;
  const o: ResolvedClientOptions = {
    urls: normalizeUrls(given.url),
    token: given.token ?? null,
    requestTimeoutMs: positiveInteger(
      'requestTimeoutMs',
      given.requestTimeoutMs ?? d.requestTimeoutMs,
    ),
    retryMinMs: nonNegative('retryMinMs', given.retryMinMs ?? d.retryMinMs),
    retryMaxMs: nonNegative('retryMaxMs', given.retryMaxMs ?? d.retryMaxMs),
    reconnectForMs: nonNegative('reconnectForMs', given.reconnectForMs ?? d.reconnectForMs),
    chunkSize: positiveInteger('chunkSize', given.chunkSize ?? d.chunkSize),
    onRetry: given.onRetry ?? null,
  };
  if (o.onRetry !== null && typeof o.onRetry !== 'function') {
    throw new RegroupError('validation_failed', 'client option onRetry must be a function');
  }
  if (o.retryMaxMs < o.retryMinMs) {
    throw new RegroupError('validation_failed', 'client option retryMaxMs must be >= retryMinMs');
  }
  return o;
}
