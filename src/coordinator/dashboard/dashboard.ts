/**
 * The live dashboard at `/`: the page, its server-sent event stream and the
 * paged task table. Lives as long as the coordinator (not one term), so a
 * standby serves it too (with no workers: they talk to the leader).
 *
 * Routes (docs/protocol.md):
 *   GET /                   the page (HTML)
 *   GET /dashboard/stream   text/event-stream: `snapshot`, then `update`s
 *   GET /dashboard/snapshot the snapshot as JSON
 *   GET /dashboard/tasks    ?group&state&after&limit -> { tasks, next, tree } (tree: parent, first children)
 */
import { DASHBOARD_MAX_STREAMS, DASHBOARD_RESERVED_STREAMS } from '../../protocol/limits.js';
import type { IncomingMessage } from 'node:http';
import type { FastifyReply } from 'fastify';
import { RegroupError } from '../../core/errors.js';
import type { GroupInfo, GroupParent, GroupState, TaskError, TaskState } from '../../core/types.js';
import type { LeaderState } from '../../store/leadership.js';
import type { Auth } from '../auth.js';
import type { CoordinatorEvents, Emitter } from '../emitter.js';
import type { Answer } from '../server.js';
import type { ResolvedCoordinatorOptions } from '../options.js';
import type { Sessions } from '../sessions.js';
import { DashboardModel, type Snapshot, type WaitingOf, type WorkerRow } from './model.js';
import { dashboardPage } from './page.js';
import { SseHub } from './sse.js';

const SAMPLE_MS = 1000;

export interface DashboardDeps {
  options: ResolvedCoordinatorOptions;
  events: Emitter<CoordinatorEvents>;
  auth: Auth;
  /** The current term's sessions; null while standing by. */
  sessions: () => Sessions | null;
  role: () => LeaderState;
  /**
   * Why a group waits: the current term's engine's verdict (Engine.waiting),
   * undefined while standing by. Without it the page shows no waiting reasons.
   */
  waiting?: WaitingOf;
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
  /** `stack`: the worker's stack trace, when it sent one (bounded by the worker protocol). */
  error: { kind: string; message: string; stack?: string } | null;
}

/** A child group's line under its parent's task table: counts and state, no input, no result. */
export interface ChildRow {
  id: string;
  handler: string;
  state: GroupState;
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  canceled: number;
  /** How many groups its own tasks spawned. */
  children: number;
}

/** Where the group sits in a tree: who spawned it, and its first children (oldest first). */
export interface TreeRows {
  parent: GroupParent | null;
  /** How many children it has, any state. */
  children: number;
  /** The first DASHBOARD_CHILDREN of them. */
  rows: ChildRow[];
}

/** Children listed under a group's task table; the rest are counted (the CLI and API page them). */
export const DASHBOARD_CHILDREN = 20;

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
    this.model = new DashboardModel(
      d.options.now(),
      (id) => this.d.waiting?.(id),
      () => this.reserved(),
    );
    this.hub = new SseHub({
      snapshot: () => this.state(),
      update: () => this.model.update(this.d.options.now()),
    });
  }

  get mode(): ResolvedCoordinatorOptions['dashboard'] {
    return this.d.options.dashboard;
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
      events.on('fact', (f) => {
        if (f.type !== 'worker.dead') return;
        const { name, reason, requeued, poisoned } = f.data;
        this.model.workerDead({
          workerId: f.workerId!,
          name,
          reason,
          requeued,
          poisoned,
          at: f.at,
        });
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

  private off(): void {
    if (this.mode === 'off')
      throw new RegroupError('not_found', 'the dashboard is off (--dashboard off)');
  }

  /** GET /: the page. */
  page(): Answer {
    this.off();
    const html = dashboardPage({
      mode: this.mode === 'token' ? 'token' : 'public',
      tokenRequired: this.d.auth.required('client'),
    });
    return {
      status: 200,
      text: html,
      type: 'text/html; charset=utf-8',
      headers: {
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        'content-security-policy':
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      },
    };
  }

  /** GET /dashboard/snapshot. */
  async snapshot(): Promise<Answer> {
    this.off();
    return { status: 200, body: await this.loadedState() };
  }

  /**
   * GET /dashboard/stream. Public by default: anyone can open streams, and
   * each costs a snapshot; the last DASHBOARD_RESERVED_STREAMS slots are kept
   * for requests that carry the client token, so anonymous streams cannot
   * lock the operator out.
   */
  async stream(req: IncomingMessage, reply: FastifyReply, authed: boolean): Promise<void> {
    this.off();
    await this.ensureLoaded();
    // Counted after the wait, right before the stream is added: a burst cannot pass the cap together.
    const cap = authed ? DASHBOARD_MAX_STREAMS : DASHBOARD_MAX_STREAMS - DASHBOARD_RESERVED_STREAMS;
    if (this.hub.size >= cap)
      throw new RegroupError(
        'too_many_requests',
        authed
          ? `the dashboard already streams to ${DASHBOARD_MAX_STREAMS} clients; close one, or poll /dashboard/snapshot`
          : `the dashboard already streams to ${cap} clients without a token; close one, poll /dashboard/snapshot, or enter the client token (${DASHBOARD_RESERVED_STREAMS} streams are kept for it)`,
      );
    const res = reply.raw;
    if (res.destroyed) return;
    reply.hijack();
    // Headers the hooks set (CORS for an allowed origin) go out with the stream's own.
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) res.setHeader(name, value);
    }
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

  /** GET /dashboard/tasks, its query checked by the route's schema. */
  async tasks(q: Record<string, unknown>): Promise<Answer> {
    this.off();
    const groupId = q['group'] as string;
    const limit = q['limit'] as number;
    const after = q['after'] as number;
    const state = (q['state'] as TaskState | undefined) ?? null;
    const store = this.d.options.store;
    const group = await store.getGroup(groupId);
    if (!group) throw new RegroupError('group_not_found', `no group with id ${groupId}`);
    const tasks = await store.taskSummaries(groupId, {
      after,
      limit,
      ...(state ? { state: state } : {}),
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
        error: t.error ? errorRow(t.error) : null,
      });
    }
    const last = tasks[tasks.length - 1];
    return {
      status: 200,
      body: {
        tasks: rows,
        next: tasks.length === limit && last ? last.index : null,
        tree: await this.tree(group),
      },
    };
  }

  /** The group's parent and first children, with their own children counts (two index reads). */
  private async tree(g: GroupInfo): Promise<TreeRows> {
    const store = this.d.options.store;
    const kids = await store.listChildren(g.id, { limit: DASHBOARD_CHILDREN });
    const counts = await store.countChildren([g.id, ...kids.map((k) => k.id)]);
    const rows = kids.map((k) => ({
      id: k.id,
      handler: k.handler,
      state: k.state,
      total: k.total,
      pending: k.pending,
      running: k.running,
      succeeded: k.succeeded,
      failed: k.failed,
      canceled: k.canceled,
      children: counts.get(k.id) ?? 0,
    }));
    return { parent: g.parent ?? null, children: counts.get(g.id) ?? 0, rows };
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

  /** Tasks claimed into the workers' reserves and not sent yet, by group. */
  private reserved(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.d.sessions()?.all() ?? [])
      for (const c of s.reserve) out.set(c.groupId, (out.get(c.groupId) ?? 0) + 1);
    return out;
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
        // Judged dead, not declared yet (the next sweep does): its runs are lost, its slots not in use.
        running: v.health === 'dead' ? 0 : v.running,
        waiting: v.health === 'dead' ? 0 : v.waiting,
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

/** A task's error for the table; the stack only when the store has one (a string). */
function errorRow(e: TaskError): NonNullable<TaskRow['error']> {
  const stack = (e as { stack?: unknown }).stack;
  return {
    kind: e.kind,
    message: e.message,
    ...(typeof stack === 'string' && stack !== '' ? { stack } : {}),
  };
}
