/**
 * The live dashboard at `/`: the page, its server-sent event stream and the
 * paged task table. Lives as long as the coordinator (not one term), so a
 * standby serves it too (with no workers: they talk to the leader).
 *
 * Routes (docs/protocol.md):
 *   GET /                   the page (HTML)
 *   GET /dashboard/stream   text/event-stream: `snapshot`, then `update`s
 *   GET /dashboard/snapshot the snapshot as JSON
 *   GET /dashboard/tasks    ?group&state&after&limit -> { tasks, next }
 */
import { DASHBOARD_MAX_STREAMS } from '../../protocol/limits.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegroupError } from '../../core/errors.js';
import type { TaskState } from '../../core/types.js';
import type { LeaderState } from '../../store/leadership.js';
import type { Auth } from '../auth.js';
import type { CoordinatorEvents, Emitter } from '../emitter.js';
import { intParam, sendError, sendJson } from '../http-util.js';
import type { ResolvedCoordinatorOptions } from '../options.js';
import type { Sessions } from '../sessions.js';
import { DashboardModel, type Snapshot, type WorkerRow } from './model.js';
import { dashboardPage } from './page.js';
import { SseHub } from './sse.js';

export const DASHBOARD_PREFIX = '/dashboard/';

/** Every path the dashboard answers (GET only); the OpenAPI test holds the document to it. */
export const DASHBOARD_ROUTES: readonly string[] = [
  '/',
  '/dashboard/stream',
  '/dashboard/snapshot',
  '/dashboard/tasks',
];
const SAMPLE_MS = 1000;
const TASK_STATES: readonly TaskState[] = ['pending', 'running', 'succeeded', 'failed', 'canceled'];

export interface DashboardDeps {
  options: ResolvedCoordinatorOptions;
  events: Emitter<CoordinatorEvents>;
  auth: Auth;
  /** The current term's sessions; null while standing by. */
  sessions: () => Sessions | null;
  role: () => LeaderState;
}

/** One row of the task table: no input, no value, no checkpoint. */
export interface TaskRow {
  index: number;
  taskId: number;
  state: TaskState;
  attempt: number;
  workerId: string | null;
  worker: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  durationMs: number | null;
  error: { kind: string; message: string } | null;
}

export type DashboardState = Snapshot & {
  role: { role: string; leaderUrl: string | null };
};

export class Dashboard {
  readonly model: DashboardModel;
  readonly hub: SseHub<DashboardState, unknown>;
  private readonly offs: (() => void)[] = [];
  private offDispatched: (() => void) | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private loaded: Promise<void> | null = null;
  /** Names of workers no longer in the sessions (for the task table), read from the store. */
  private names = new Map<string, string>();
  private namesReadAt = -Infinity;

  constructor(private readonly d: DashboardDeps) {
    this.model = new DashboardModel(d.options.now());
    this.hub = new SseHub({
      snapshot: () => this.state(),
      update: () => this.model.update(this.d.options.now()),
    });
  }

  get mode(): ResolvedCoordinatorOptions['dashboard'] {
    return this.d.options.dashboard;
  }

  /** Whether a request path is the dashboard's (it answers them all, even when off). */
  static owns(path: string): boolean {
    return path === '/' || path.startsWith(DASHBOARD_PREFIX);
  }

  start(): void {
    if (this.mode === 'off' || this.sampler) return;
    const { events } = this.d;
    const now = this.d.options.now;
    this.offs.push(
      events.on('groupChanged', (g) => {
        this.model.groupChanged(g, now());
        this.hub.changed();
      }),
      events.on('workerDead', (e) => {
        this.model.workerDead(e);
        this.followDispatches();
        this.hub.changed();
      }),
    );
    this.sampler = setInterval(() => this.sample(), SAMPLE_MS);
    this.sampler.unref();
    this.sample();
  }

  stop(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    for (const off of this.offs.splice(0)) off();
    this.offDispatched?.();
    this.offDispatched = null;
    this.hub.stop();
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      if (this.mode === 'off')
        throw new RegroupError('not_found', 'the dashboard is off (--dashboard off)');
      const path = url.pathname;
      if (!DASHBOARD_ROUTES.includes(path))
        throw new RegroupError('not_found', `no route GET ${path}; the dashboard is at /`);
      if (req.method !== 'GET')
        throw new RegroupError('method_not_allowed', `${req.method} is not allowed on ${path}`);
      req.resume();
      if (path === '/') return this.page(res);
      if (this.mode === 'token') await this.d.auth.check(req, 'client');
      if (path === '/dashboard/stream') return await this.stream(req, res);
      if (path === '/dashboard/snapshot') return sendJson(res, 200, await this.loadedState());
      return await this.tasks(res, url.searchParams);
    } catch (e) {
      req.resume();
      sendError(res, e);
    }
  }

  private page(res: ServerResponse): void {
    const html = dashboardPage({
      mode: this.mode === 'token' ? 'token' : 'public',
      tokenRequired: this.d.auth.required('client'),
    });
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(html),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'content-security-policy':
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    });
    res.end(html);
  }

  private async stream(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Public by default: anyone can open streams, and each costs a snapshot.
    if (this.hub.size >= DASHBOARD_MAX_STREAMS)
      throw new RegroupError(
        'unavailable',
        `the dashboard already streams to ${DASHBOARD_MAX_STREAMS} clients; close one, or poll /dashboard/snapshot`,
      );
    await this.ensureLoaded();
    if (res.destroyed) return;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    const client = this.hub.add({
      write: (text) => !res.destroyed && res.write(text),
      end: () => res.end(),
    });
    res.on('drain', client.drained);
    res.on('close', client.remove);
    req.on('error', client.remove);
  }

  private async tasks(res: ServerResponse, q: URLSearchParams): Promise<void> {
    const groupId = q.get('group') ?? '';
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(groupId))
      throw new RegroupError('validation_failed', 'query parameter group must be a group id');
    const limit = intParam(q, 'limit', 50, 1, 500);
    const after = intParam(q, 'after', -1, -1, Number.MAX_SAFE_INTEGER);
    const state = q.get('state') || null;
    if (state !== null && !TASK_STATES.includes(state as TaskState)) {
      throw new RegroupError(
        'validation_failed',
        `query parameter state must be one of ${TASK_STATES.join(', ')}`,
      );
    }
    const store = this.d.options.store;
    if (!(await store.getGroup(groupId)))
      throw new RegroupError('group_not_found', `no group with id ${groupId}`);
    const tasks = await store.listTasks(groupId, {
      after,
      limit,
      ...(state ? { state: state as TaskState } : {}),
    });
    const now = this.d.options.now();
    const rows: TaskRow[] = [];
    for (const t of tasks) {
      const startedAt = t.startedAt ?? null;
      const finishedAt = t.finishedAt ?? null;
      const workerId = t.workerId ?? null;
      rows.push({
        index: t.index,
        taskId: t.taskId,
        state: t.state,
        attempt: t.attempt,
        workerId,
        worker: workerId === null ? null : await this.nameOf(workerId),
        startedAt,
        finishedAt,
        durationMs:
          startedAt === null
            ? null
            : (finishedAt ?? (t.state === 'running' ? now : startedAt)) - startedAt,
        error: t.error ? { kind: t.error.kind, message: t.error.message } : null,
      });
    }
    const last = tasks[tasks.length - 1];
    sendJson(res, 200, { tasks: rows, next: tasks.length === limit && last ? last.index : null });
  }

  /** A worker's name: live or recently dead from memory, else the store (read at most every 5 s). */
  private async nameOf(workerId: string): Promise<string> {
    const known = this.d.sessions()?.get(workerId)?.name ?? this.model.nameOf(workerId);
    if (known !== undefined) return known;
    if (!this.names.has(workerId) && this.d.options.now() - this.namesReadAt > 5000) {
      this.namesReadAt = this.d.options.now();
      const all = await this.d.options.store.listWorkers();
      this.names = new Map(all.map((w) => [w.workerId, w.name]));
    }
    return this.names.get(workerId) ?? workerId;
  }

  private state(): DashboardState {
    const r = this.d.role();
    return {
      ...this.model.snapshot(this.d.options.now()),
      role: { role: r.role, leaderUrl: r.leaderUrl },
    };
  }

  private async loadedState(): Promise<DashboardState> {
    await this.ensureLoaded();
    return this.state();
  }

  /** The groups of the store, read once, when the first client comes. */
  private ensureLoaded(): Promise<void> {
    this.loaded ??= this.d.options.store.listGroups({ limit: 50 }).then(
      (gs) => this.model.loadGroups(gs),
      (e: unknown) => {
        this.loaded = null; // a standby whose store is not open yet: try again next time
        this.d.options.logger('warn', 'dashboard: could not read the groups', {
          err: (e as Error).message,
        });
      },
    );
    return this.loaded;
  }

  private sample(): void {
    const sessions = this.d.sessions();
    const now = this.d.options.now();
    const rows: WorkerRow[] = [];
    const draining = new Set<string>();
    for (const s of sessions?.all() ?? []) {
      const v = s.view(now, this.d.options);
      if (s.draining) draining.add(s.workerId);
      rows.push({
        workerId: v.workerId,
        name: v.name,
        health: v.health,
        connected: v.connected,
        slots: v.slots,
        running: v.running,
        tasksDone: v.tasksDone,
        heartbeatAgoMs: v.lastSeenAgoMs,
        deadAt: null,
      });
    }
    this.model.sample(now, rows, draining);
    this.followDispatches();
    this.hub.changed();
  }

  /** Listens to dispatches only while a dead worker's tasks are followed: the hot path stays free otherwise. */
  private followDispatches(): void {
    if (this.model.following && !this.offDispatched) {
      this.offDispatched = this.d.events.on('dispatched', (e) => {
        const name = this.d.sessions()?.get(e.workerId)?.name ?? e.workerId;
        this.model.dispatched(e.taskId, name, this.d.options.now());
        this.hub.changed();
        if (!this.model.following) this.followDispatches();
      });
    } else if (!this.model.following && this.offDispatched) {
      this.offDispatched();
      this.offDispatched = null;
    }
  }
}
