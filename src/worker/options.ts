import { hostname } from 'node:os';
import { RegroupError } from '../core/errors.js';
import { WORKER_PATH } from '../protocol/constants.js';
import type { TaskContext } from './run.js';

/** A task handler: JSON input in, JSON-serializable value out. */
// The input is whatever JSON the group was submitted with; `any` lets a handler declare its own type.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (input: any, ctx: TaskContext) => unknown;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: object) => void;

export interface WorkerOptions {
  /** Coordinator URL (http, https, ws or wss), or several: they are tried in turn. */
  url: string | string[];
  /** Handlers by name; the names are announced to the coordinator. */
  handlers: Record<string, Handler>;
  /** Runs this worker holds at once (its slots). Default 10. */
  concurrency?: number;
  /** Shown in logs and on the dashboard. Default `<hostname>-<pid>`. */
  name?: string;
  /** Labels a task's `requires` are matched against. Default none. */
  labels?: string[];
  /** Worker token, sent as `Authorization: Bearer <token>` on the upgrade. */
  token?: string;
  /** How long drain() lets running handlers finish before releasing them. Default 30000. */
  drainTimeoutMs?: number;
  /**
   * Handlers that wait on a group they spawned (a handle's wait,
   * waitSettled or results) give their slot back while they wait, at most
   * this many at once; past it a waiting handler keeps its slot. Bounds the
   * memory of waiting handlers. 0: waiting handlers always keep their slot.
   * Default 10000.
   */
  maxSuspended?: number;
  /** First reconnect delay. Default 100. */
  reconnectMinMs?: number;
  /** Largest reconnect delay. Default 1000: well inside the coordinator's resume grace (deadAfterMs, 2 s), so a worker is back in time after a coordinator restart. */
  reconnectMaxMs?: number;
  /** Where log lines go. Default: warn and error to stderr. */
  logger?: Logger;
}

export interface ResolvedWorkerOptions {
  /** The WebSocket URLs, already turned into `ws(s)://.../v1/worker`. */
  urls: readonly string[];
  handlers: Readonly<Record<string, Handler>>;
  concurrency: number;
  name: string;
  labels: readonly string[];
  token: string | null;
  drainTimeoutMs: number;
  maxSuspended: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  logger: Logger;
}

export const DEFAULT_WORKER_OPTIONS = Object.freeze({
  concurrency: 10,
  drainTimeoutMs: 30_000,
  maxSuspended: 10_000,
  reconnectMinMs: 100,
  reconnectMaxMs: 1_000,
});

const NAME_MAX = 200;

/** Writes warn and error lines to stderr; the CLI passes its own logger. */
export const stderrLogger: Logger = (level, msg, fields) => {
  if (level !== 'warn' && level !== 'error') return;
  const extra = fields === undefined ? '' : ` ${JSON.stringify(fields)}`;
  process.stderr.write(`regroup worker ${level}: ${msg}${extra}\n`);
};

function invalid(message: string): RegroupError {
  return new RegroupError('validation_failed', message);
}

function checkName(what: string, s: unknown): string {
  if (typeof s !== 'string' || s.length < 1 || s.length > NAME_MAX) {
    throw invalid(`${what} must be a string of 1 to ${NAME_MAX} characters, got ${String(s)}`);
  }
  return s;
}

function checkInteger(what: string, n: number, min: number, max: number): number {
  if (!Number.isInteger(n) || n < min || n > max) {
    throw invalid(`${what} must be an integer from ${min} to ${max}, got ${n}`);
  }
  return n;
}

/** `http://host:7700` -> `ws://host:7700/v1/worker`; a path prefix is kept. */
export function workerUrl(given: string): string {
  let u: URL;
  try {
    u = new URL(given);
  } catch {
    throw invalid(`url ${JSON.stringify(given)} is not a URL; expected e.g. http://127.0.0.1:7700`);
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[u.protocol];
  if (scheme === undefined) {
    throw invalid(`url ${given} must use http, https, ws or wss, not ${u.protocol}`);
  }
  u.protocol = scheme;
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = path.endsWith(WORKER_PATH) ? path : path + WORKER_PATH;
  u.hash = '';
  return u.toString();
}

/** What the user passes -> frozen defaults -> a resolved object with every field set. */
export function resolveWorkerOptions(o: WorkerOptions): ResolvedWorkerOptions {
  const urls = (Array.isArray(o.url) ? o.url : [o.url]).map(workerUrl);
  if (urls.length === 0) throw invalid('url must name at least one coordinator');
  const handlers: Record<string, Handler> = {};
  for (const [name, fn] of Object.entries(o.handlers ?? {})) {
    checkName('a handler name', name);
    if (typeof fn !== 'function') throw invalid(`handler ${name} is not a function`);
    handlers[name] = fn;
  }
  if (Object.keys(handlers).length === 0) throw invalid('handlers must hold at least one handler');
  const d = DEFAULT_WORKER_OPTIONS;
  const r: ResolvedWorkerOptions = {
    urls,
    handlers: Object.freeze(handlers),
    concurrency: checkInteger('concurrency', o.concurrency ?? d.concurrency, 1, 100_000),
    name: checkName('name', o.name ?? `${hostname()}-${process.pid}`.slice(0, NAME_MAX)),
    labels: [...new Set((o.labels ?? []).map((l) => checkName('a label', l)))].sort(),
    token: o.token === undefined || o.token === '' ? null : o.token,
    drainTimeoutMs: checkInteger(
      'drainTimeoutMs',
      o.drainTimeoutMs ?? d.drainTimeoutMs,
      0,
      2 ** 31 - 1,
    ),
    maxSuspended: checkInteger('maxSuspended', o.maxSuspended ?? d.maxSuspended, 0, 50_000),
    reconnectMinMs: checkInteger(
      'reconnectMinMs',
      o.reconnectMinMs ?? d.reconnectMinMs,
      1,
      2 ** 31 - 1,
    ),
    reconnectMaxMs: checkInteger(
      'reconnectMaxMs',
      o.reconnectMaxMs ?? d.reconnectMaxMs,
      1,
      2 ** 31 - 1,
    ),
    logger: o.logger ?? stderrLogger,
  };
  if (r.reconnectMaxMs < r.reconnectMinMs) {
    throw invalid(
      `reconnectMaxMs (${r.reconnectMaxMs}) must be at least reconnectMinMs (${r.reconnectMinMs})`,
    );
  }
  return Object.freeze(r);
}

/**
 * Delay before reconnect attempt number `failures` (0 = the first after a
 * drop): a random point between min and a ceiling that doubles with every
 * failure, capped at max. The jitter keeps a fleet that lost its coordinator
 * from knocking all at once when it comes back.
 */
export function reconnectDelayMs(
  failures: number,
  o: Pick<ResolvedWorkerOptions, 'reconnectMinMs' | 'reconnectMaxMs'>,
  random: () => number,
): number {
  const exp = Math.min(Math.max(failures, 0) + 1, 30);
  const ceiling = Math.min(o.reconnectMaxMs, o.reconnectMinMs * 2 ** exp);
  return Math.round(o.reconnectMinMs + random() * (ceiling - o.reconnectMinMs));
}
