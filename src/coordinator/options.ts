import { DEFAULT_LIVENESS, type LivenessOptions } from '../core/liveness.js';
import {
  DEFAULT_MAX_SUSPENDED_PER_WORKER,
  DEFAULT_MAX_WORKER_SLOTS,
  DEFAULT_TIMEOUT_GRACE_MS,
} from '../core/deadline.js';
import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';
import { randomBytes } from 'node:crypto';
import type { Leadership } from '../store/leadership.js';
import type { Store } from '../store/store.js';
import { parseAllowedHosts, parseAllowedOrigins } from './edge.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface CoordinatorOptions {
  store: Store;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 7070; 0 picks a free port. */
  port?: number;
  heartbeatMs?: number;
  deadAfterMs?: number;
  closeGraceMs?: number;
  /**
   * How long after a run's timeoutMs (or heartbeatTimeoutMs) the coordinator
   * ends the run itself, failing it as a timeout, when the worker has not
   * reported it. Default 5000 (docs/design.md, "Lease ends").
   */
  timeoutGraceMs?: number;
  /** Most slots one worker is granted, whatever its hello announces. Default 1024. */
  maxWorkerSlots?: number;
  /**
   * Most runs of one worker whose handler waits on a group it spawned with
   * its slot given back; past it such a run keeps its slot. Default 10000.
   */
  maxSuspendedPerWorker?: number;
  /**
   * Limits of concurrencyKeys (task option): at most that many tasks of all
   * groups naming the key running at once. A key set here takes this limit
   * whatever its groups propose. Default none.
   */
  concurrencyLimits?: Record<string, number>;
  limits?: Partial<Limits>;
  /** How often liveness is judged and ended backoffs are dispatched. Default heartbeatMs / 5, within 10..100 ms. */
  sweepMs?: number;
  logger?: Logger;
  /** Bearer token clients must send to the HTTP API; null/absent = no client authentication. */
  clientToken?: string | null;
  /** Bearer token workers must send on the WebSocket upgrade; null/absent = no worker authentication. */
  workerToken?: string | null;
  /** Serve HTTPS and WSS with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer } | null;
  /**
   * Several coordinators on one store (PostgreSQL): how they elect a leader.
   * Absent: this coordinator always leads (SQLite).
   */
  leadership?: Leadership | null;
  /** This coordinator's id among the coordinators of one store. Default: random. */
  coordinatorId?: string;
  /** The URL other machines reach this coordinator at, told to clients and workers by standbys. Default: the URL it listens on. */
  advertiseUrl?: string | null;
  /**
   * The live dashboard at `/` (docs/operations.md, Dashboard). public (default):
   * its read-only data is served without a token; token: it needs the client
   * token too; off: not served. Cancel and retry always need the client token.
   */
  dashboard?: DashboardMode;
  /**
   * Origins (`scheme://host[:port]`) whose web pages may call the API and open
   * worker sockets, besides the coordinator's own pages. Default none
   * (docs/security.md, "Browsers").
   */
  allowOrigins?: readonly string[];
  /** Host names accepted in `Host` besides IP literals, loopback names, the advertised host and this machine's name. */
  allowHosts?: readonly string[];
  /** Timeouts at the HTTP edge (docs/security.md, "Slow and idle clients"). */
  timeouts?: Partial<EdgeTimeouts>;
  /** Most connections open at once from one address (HTTP and WebSocket); 0 = no cap. Default 512. */
  maxConnectionsPerAddress?: number;
  /** Injected for tests: the clock and the randomness (jitter). */
  now?: () => number;
  random?: () => number;
}

export interface ResolvedCoordinatorOptions extends LivenessOptions {
  store: Store;
  host: string;
  port: number;
  limits: Limits;
  sweepMs: number;
  timeoutGraceMs: number;
  maxWorkerSlots: number;
  maxSuspendedPerWorker: number;
  concurrencyLimits: Readonly<Record<string, number>>;
  logger: Logger;
  clientToken: string | null;
  workerToken: string | null;
  tls: { cert: string | Buffer; key: string | Buffer } | null;
  leadership: Leadership | null;
  coordinatorId: string;
  advertiseUrl: string | null;
  dashboard: DashboardMode;
  allowOrigins: string[];
  allowHosts: string[];
  timeouts: EdgeTimeouts;
  maxConnectionsPerAddress: number;
  now: () => number;
  random: () => number;
}

export const DEFAULT_PORT = 7070;

/** How long the edge waits on a client before it cuts the connection. */
export interface EdgeTimeouts {
  /** From the connection (or the end of the last request) to the end of the request's headers. */
  headersMs: number;
  /** From the start of a request to the end of its body (a body that trickles is cut). */
  requestMs: number;
  /** How long a kept-alive connection may sit idle between requests. */
  idleMs: number;
  /** From a worker socket's upgrade to its `hello`. */
  helloMs: number;
}

export const DEFAULT_TIMEOUTS: Readonly<EdgeTimeouts> = Object.freeze({
  headersMs: 10_000,
  requestMs: 30_000,
  idleMs: 30_000,
  helloMs: 10_000,
});

export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 512;

export type DashboardMode = 'public' | 'token' | 'off';
export const DASHBOARD_MODES: readonly DashboardMode[] = ['public', 'token', 'off'];

export const silentLogger: Logger = () => {};

export function resolveCoordinatorOptions(o: CoordinatorOptions): ResolvedCoordinatorOptions {
  const heartbeatMs = o.heartbeatMs ?? DEFAULT_LIVENESS.heartbeatMs;
  const deadAfterMs = o.deadAfterMs ?? DEFAULT_LIVENESS.deadAfterMs;
  const closeGraceMs = o.closeGraceMs ?? DEFAULT_LIVENESS.closeGraceMs;
  for (const [name, v] of Object.entries({ heartbeatMs, deadAfterMs, closeGraceMs })) {
    if (!Number.isFinite(v) || v <= 0)
      throw new Error(`${name} must be a positive number of milliseconds, got ${v}`);
  }
  for (const [name, t] of Object.entries({
    clientToken: o.clientToken,
    workerToken: o.workerToken,
  })) {
    if (t !== undefined && t !== null && (t.length < 16 || /\s/.test(t))) {
      throw new Error(`${name} must be at least 16 characters without spaces`);
    }
  }
  if (o.coordinatorId !== undefined && !/^[A-Za-z0-9_.-]{1,48}$/.test(o.coordinatorId)) {
    throw new Error(
      `coordinatorId must be 1 to 48 letters, digits, '.', '_' or '-', got ${JSON.stringify(o.coordinatorId)}`,
    );
  }
  if (o.advertiseUrl !== undefined && o.advertiseUrl !== null) {
    let u: URL | null = null;
    try {
      u = new URL(o.advertiseUrl);
    } catch {
      // reported below
    }
    if (
      !u ||
      (u.protocol !== 'http:' && u.protocol !== 'https:') ||
      /^0\.0\.0\.0$|^\[::\]$/.test(u.hostname)
    ) {
      throw new Error(
        `advertiseUrl must be an http(s) URL other machines can reach, e.g. http://10.0.0.5:7070; got ${JSON.stringify(o.advertiseUrl)}`,
      );
    }
  }
  if (o.dashboard !== undefined && !DASHBOARD_MODES.includes(o.dashboard)) {
    throw new Error(
      `dashboard must be one of ${DASHBOARD_MODES.join(', ')}, got ${JSON.stringify(o.dashboard)}`,
    );
  }
  const timeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  for (const [name, v] of Object.entries(timeouts)) {
    if (!Number.isInteger(v) || v < 100 || v > 3_600_000)
      throw new Error(`timeouts.${name} must be whole milliseconds from 100 to 3600000, got ${v}`);
  }
  const maxConns = o.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  if (!Number.isInteger(maxConns) || maxConns < 0)
    throw new Error(`maxConnectionsPerAddress must be a whole number >= 0, got ${maxConns}`);
  const timeoutGraceMs = o.timeoutGraceMs ?? DEFAULT_TIMEOUT_GRACE_MS;
  if (!Number.isInteger(timeoutGraceMs) || timeoutGraceMs < 0)
    throw new Error(`timeoutGraceMs must be whole milliseconds >= 0, got ${timeoutGraceMs}`);
  const maxWorkerSlots = o.maxWorkerSlots ?? DEFAULT_MAX_WORKER_SLOTS;
  if (!Number.isInteger(maxWorkerSlots) || maxWorkerSlots < 1 || maxWorkerSlots > 100_000)
    throw new Error(
      `maxWorkerSlots must be a whole number from 1 to 100000, got ${maxWorkerSlots}`,
    );
  const maxSuspendedPerWorker = o.maxSuspendedPerWorker ?? DEFAULT_MAX_SUSPENDED_PER_WORKER;
  if (
    !Number.isInteger(maxSuspendedPerWorker) ||
    maxSuspendedPerWorker < 0 ||
    maxSuspendedPerWorker > 50_000
  )
    throw new Error(
      `maxSuspendedPerWorker must be a whole number from 0 to 50000, got ${maxSuspendedPerWorker}`,
    );
  const concurrencyLimits: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [key, n] of Object.entries(o.concurrencyLimits ?? {})) {
    if (!/^[A-Za-z0-9_.:/@-]{1,200}$/.test(key))
      throw new Error(
        `concurrencyLimits: key ${JSON.stringify(key).slice(0, 220)} must be 1-200 letters, digits or _ . : / @ -`,
      );
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
      throw new Error(
        `concurrencyLimits.${key} must be a whole number from 1 to 1000000, got ${n}`,
      );
    concurrencyLimits[key] = n;
  }
  if (deadAfterMs <= heartbeatMs) {
    throw new Error(
      `deadAfterMs (${deadAfterMs}) must be larger than heartbeatMs (${heartbeatMs})`,
    );
  }
  return {
    store: o.store,
    host: o.host ?? '127.0.0.1',
    port: o.port ?? DEFAULT_PORT,
    heartbeatMs,
    deadAfterMs,
    closeGraceMs,
    limits: { ...DEFAULT_LIMITS, ...o.limits },
    sweepMs: o.sweepMs ?? Math.max(10, Math.min(100, Math.floor(heartbeatMs / 5))),
    timeoutGraceMs,
    maxWorkerSlots,
    maxSuspendedPerWorker,
    concurrencyLimits: Object.freeze(concurrencyLimits),
    logger: o.logger ?? silentLogger,
    clientToken: o.clientToken ?? null,
    workerToken: o.workerToken ?? null,
    tls: o.tls ?? null,
    leadership: o.leadership ?? null,
    coordinatorId: o.coordinatorId ?? 'c_' + randomBytes(6).toString('hex'),
    advertiseUrl: o.advertiseUrl ?? null,
    dashboard: o.dashboard ?? 'public',
    allowOrigins: parseAllowedOrigins(o.allowOrigins ?? []),
    allowHosts: parseAllowedHosts(o.allowHosts ?? []),
    timeouts,
    maxConnectionsPerAddress: maxConns,
    now: o.now ?? Date.now,
    random: o.random ?? Math.random,
  };
}
