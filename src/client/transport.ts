import { setMaxListeners } from 'node:events';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { ERROR_CODES, RegroupError, isErrorCode, type ErrorCode } from '../core/errors.js';
import { backoffDelayMs } from '../core/retry.js';
import { parseJson } from '../protocol/json.js';
import type { ResolvedClientOptions } from './options.js';

export interface Request {
  method: 'GET' | 'POST';
  /** Path and query, e.g. `/v1/groups/g1/wait?timeoutMs=30000`. */
  path: string;
  body?: unknown;
  /** Overrides the client's requestTimeoutMs (long polls). */
  timeoutMs?: number;
}

export interface RetryPolicy {
  /** Keep retrying transient failures for this long; `Infinity` retries until closed or aborted. */
  forMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * HTTP to one or more coordinators. A transient failure (no connection, no
 * reply in time, or a 503) moves to the next URL at once; after a whole round
 * of failures it backs off (retryMinMs..retryMaxMs with jitter). Anything else
 * (4xx, other 5xx) is thrown at once as the coordinator's RegroupError.
 */
export class Transport {
  private current = 0;
  private readonly closer = new AbortController();
  /** The coordinators to try: the configured ones, plus leaders that standbys named. */
  private readonly urls: string[];
  /** Kept-alive connections: node:http costs about half of fetch per round trip on loopback. */
  private readonly agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
  };

  constructor(private readonly options: ResolvedClientOptions) {
    this.urls = [...options.urls];
    // Every request in flight listens for close(); many concurrent waits are normal, not a leak.
    setMaxListeners(0, this.closer.signal);
  }

  get closed(): boolean {
    return this.closer.signal.aborted;
  }

  /** Aborts every request and retry sleep; later calls reject with `closed`. */
  close(): void {
    if (!this.closed) this.closer.abort(closedError());
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  async call<T>(req: Request, retry: RetryPolicy): Promise<T> {
    const started = Date.now();
    let redirects = 0;
    for (let failures = 1; ; failures++) {
      try {
        return (await this.once(req, retry.signal)) as T;
      } catch (e) {
        if (!(e instanceof RegroupError) || !e.retryable) throw e;
        // A standby named the leader: go there at once (a few times in a row at most).
        const leader = e instanceof LeaderRedirect ? this.indexOf(e.leader) : -1;
        if (leader >= 0 && leader !== this.current && redirects < 3) {
          redirects++;
          failures--;
          this.current = leader;
          continue;
        }
        const urls = this.urls.length;
        this.current = (this.current + 1) % urls;
        if (failures % urls !== 0) continue;
        const delay = backoffDelayMs(
          failures / urls,
          { backoffMs: this.options.retryMinMs, backoffMaxMs: this.options.retryMaxMs },
          Math.random,
        );
        const elapsedMs = Date.now() - started;
        if (elapsedMs + delay > retry.forMs) throw e;
        this.told(e, failures / urls, delay, elapsedMs, retry.forMs);
        await sleep(delay, this.closer.signal, retry.signal);
      }
    }
  }

  /** Tells the user's onRetry hook; what it throws is not the request's business. */
  private told(
    error: RegroupError,
    retry: number,
    delayMs: number,
    elapsedMs: number,
    forMs: number,
  ): void {
    const hook = this.options.onRetry;
    if (hook === null) return;
    try {
      hook({ error, retry, delayMs, elapsedMs, forMs });
    } catch {
      // Ignored, as documented: a failing hook must not fail the request.
    }
  }

  private async once(req: Request, userSignal: AbortSignal | undefined): Promise<unknown> {
    throwIfAborted(this.closer.signal, userSignal);
    const base = this.urls[this.current] ?? '';
    const timeoutMs = req.timeoutMs ?? this.options.requestTimeoutMs;
    const ctl = new AbortController();
    const unlink = link(ctl, this.closer.signal, userSignal);
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const res = await this.send(base + req.path, req, ctl.signal);
      const text = res.text;
      if (res.status < 200 || res.status > 299) {
        const err = errorFromReply(res.status, text, base);
        const leader = res.headers['regroup-leader'];
        if (err.code === 'not_leader' && typeof leader === 'string' && leader)
          throw new LeaderRedirect(err, leader);
        throw err;
      }
      // The coordinator bounded every value's depth when it entered; its replies nest them further.
      return parseJson(text, `reply of ${req.method} ${base}${req.path}`, { maxDepth: Infinity });
    } catch (e) {
      if (e instanceof RegroupError) throw e;
      throwIfAborted(this.closer.signal, userSignal);
      const why = ctl.signal.aborted ? `no reply within ${timeoutMs} ms` : explain(e, base);
      throw new RegroupError('connection_failed', `cannot reach ${base}: ${why}`, { cause: e });
    } finally {
      clearTimeout(timer);
      unlink();
    }
  }

  /** One HTTP exchange; rejects on a socket error or when `signal` aborts. */
  private send(
    url: string,
    req: Request,
    signal: AbortSignal,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const secure = u.protocol === 'https:';
      const body = req.body === undefined ? null : JSON.stringify(req.body);
      const headers: Record<string, string | number> = this.headers(body !== null);
      if (body !== null) headers['content-length'] = Buffer.byteLength(body);
      const r = (secure ? https : http).request(
        u,
        {
          method: req.method,
          headers,
          agent: secure ? this.agents.https : this.agents.http,
          signal,
        },
        (res) => {
          // Decoded as it arrives (a decoder keeps a character split across
          // chunks whole) and joined once: a reply costs its text and the
          // parse, not also a buffer of it. A reply of task pages is one page
          // (the coordinator bounds a page by bytes: docs/protocol.md).
          res.setEncoding('utf8');
          const parts: string[] = [];
          res.on('data', (c: string) => parts.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text: parts.join('') }),
          );
          res.on('error', reject);
        },
      );
      r.on('error', reject);
      r.end(body ?? undefined);
    });
  }

  /** The index of a coordinator URL, added to the list when it is new. */
  private indexOf(url: string): number {
    const u = url.replace(/\/+$/, '');
    if (!/^https?:\/\//.test(u)) return -1;
    const i = this.urls.indexOf(u);
    if (i >= 0) return i;
    this.urls.push(u);
    return this.urls.length - 1;
  }

  private headers(hasBody: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json' };
    if (hasBody) h['content-type'] = 'application/json';
    if (this.options.token !== null) h.authorization = `Bearer ${this.options.token}`;
    return h;
  }
}

/** `not_leader` from a standby that named the leader. */
class LeaderRedirect extends RegroupError {
  constructor(
    e: RegroupError,
    readonly leader: string,
  ) {
    super('not_leader', e.message, { retryable: true });
  }
}

export function closedError(): RegroupError {
  return new RegroupError('closed', 'the client was closed');
}

/** The coordinator's error; retryable exactly when the status is 503 (unavailable) or 507 (storage full). */
export function errorFromReply(status: number, text: string, base: string): RegroupError {
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not our JSON (a proxy page?): fall back to the status below.
  }
  const wire = (body as { error?: { code?: unknown } } | null)?.error;
  const fallback = `HTTP ${status} from ${base}`;
  const code: ErrorCode = isErrorCode(wire?.code) ? wire.code : codeOfStatus(status);
  const message = RegroupError.fromWire(body, fallback).message;
  return new RegroupError(code, message, { retryable: status === 503 || status === 507 });
}

function codeOfStatus(status: number): ErrorCode {
  for (const code of ['bad_request', 'unauthorized', 'not_found', 'unavailable'] as const) {
    if (ERROR_CODES[code].status === status) return code;
  }
  return status === 413 ? 'body_too_large' : status >= 500 ? 'internal' : 'bad_request';
}

/**
 * The socket error a user meets most, said with what to do about it: nothing
 * listening, the wrong scheme, a name that does not resolve. Others keep
 * their code (`ETIMEDOUT`, ...).
 */
export function explain(e: unknown, base: string): string {
  const code = describe(e);
  const secure = base.startsWith('https:');
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (ECONNREFUSED): no coordinator listens there; start one with `regroup server`, or point --url / REGROUP_URL at a running one';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host not found (${code}): check the host name in the URL`;
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return secure
        ? `TLS handshake failed (${code}): the server does not speak https; if it serves plain http, use ${base.replace(/^https:/, 'http:')}`
        : `protocol error (${code})`;
    case 'ECONNRESET':
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_VERSION':
      return secure
        ? `connection reset (${code})`
        : `connection reset or not HTTP (${code}): if the server serves https, use ${base.replace(/^http:/, 'https:')}`;
    default:
      return code;
  }
}

function describe(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && code !== 'ABORT_ERR') return code;
  const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return e instanceof Error ? e.message : String(e);
}

function throwIfAborted(closer: AbortSignal, user: AbortSignal | undefined): void {
  if (closer.aborted) throw closedError();
  user?.throwIfAborted();
}

/** Aborts `ctl` when any source aborts; returns the function that removes the listeners. */
function link(ctl: AbortController, ...sources: (AbortSignal | undefined)[]): () => void {
  const abort = (): void => ctl.abort();
  for (const s of sources) s?.addEventListener('abort', abort, { once: true });
  return () => {
    for (const s of sources) s?.removeEventListener('abort', abort);
  };
}

/** Waits `ms`, or rejects at once (closed, or the user's reason) when a signal aborts. */
export function sleep(ms: number, closer: AbortSignal, user?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      closer.removeEventListener('abort', done);
      user?.removeEventListener('abort', done);
      try {
        throwIfAborted(closer, user);
        resolve();
      } catch (e) {
        // The user's abort reason is passed on as it is, like fetch does.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(e);
      }
    };
    const timer = setTimeout(done, ms);
    closer.addEventListener('abort', done, { once: true });
    user?.addEventListener('abort', done, { once: true });
    if (closer.aborted || user?.aborted) done();
  });
}
