/** The client API, routes as documented in src/protocol/http.ts. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { RegroupError } from '../core/errors.js';
import { isGroupDone } from '../core/group.js';
import { resolveTaskOptions } from '../core/options.js';
import type { GroupInfo, TaskState } from '../core/types.js';
import {
  LONG_POLL_MAX_MS,
  addTasksRequest,
  emptyRequest,
  retryRequest,
  submitRequest,
  type GroupView,
  type RetryReply,
  type TaskView,
} from '../protocol/http.js';
import type { Store } from '../store/store.js';
import type { Engine } from './engine.js';
import { intParam, readJsonBody, requestUrl, sendError, sendJson } from './http-util.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import type { Sessions } from './sessions.js';
import type { Auth } from './auth.js';
import { jsonBytes } from './workers.js';

const TASK_STATES: readonly TaskState[] = ['pending', 'running', 'succeeded', 'failed', 'canceled'];

export function groupView(g: GroupInfo): GroupView {
  return { ...g, done: isGroupDone(g.state, g) };
}

/**
 * Long-poll waiters, woken when a tick changed their group. A long poll
 * watches BEFORE it reads the group, so a change committed between the read
 * and the wait is never missed (the watch has already fired).
 */
export class Waiters {
  private readonly byGroup = new Map<string, Set<() => void>>();

  watch(groupId: string): {
    wait: (timeoutMs: number, signal: AbortSignal) => Promise<void>;
    cancel: () => void;
  } {
    let fired = false;
    let wake: (() => void) | null = null;
    const set = this.byGroup.get(groupId) ?? new Set();
    this.byGroup.set(groupId, set);
    const fn = (): void => {
      fired = true;
      wake?.();
    };
    set.add(fn);
    const cancel = (): void => {
      set.delete(fn);
      if (set.size === 0 && this.byGroup.get(groupId) === set) this.byGroup.delete(groupId);
    };
    const wait = (timeoutMs: number, signal: AbortSignal): Promise<void> =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          cancel();
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        signal.addEventListener('abort', done);
        wake = done;
        if (fired || signal.aborted) done();
      });
    return { wait, cancel };
  }

  notify(groups: GroupInfo[]): void {
    for (const g of groups) {
      const set = this.byGroup.get(g.id);
      if (set) for (const fn of [...set]) fn();
    }
  }

  /** Wakes every waiter (shutdown). */
  wakeAll(): void {
    for (const [, set] of this.byGroup) for (const fn of [...set]) fn();
  }
}

type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  params: string[],
  q: URLSearchParams,
  signal: AbortSignal,
) => Promise<void>;

export class HttpApi {
  private readonly routes: { method: string; re: RegExp; fn: Handler }[] = [];

  constructor(
    private readonly o: ResolvedCoordinatorOptions,
    private readonly store: Store,
    private readonly engine: Engine,
    private readonly sessions: Sessions,
    private readonly waiters: Waiters,
    private readonly auth: Auth,
  ) {
    const G = '/v1/groups/([A-Za-z0-9_-]{1,100})';
    this.route('GET', '^/healthz$', async (_q, res) => sendJson(res, 200, { ok: true }));
    this.route('POST', '^/v1/groups$', (req, res) => this.submit(req, res));
    this.route('GET', '^/v1/groups$', (_r, res, _p, q) => this.list(res, q));
    this.route('GET', `^${G}$`, async (_r, res, [id]) =>
      sendJson(res, 200, groupView(await this.mustGroup(id!))),
    );
    this.route('POST', `^${G}/tasks$`, (req, res, [id]) => this.add(req, res, id!));
    this.route('POST', `^${G}/seal$`, (req, res, [id]) => this.seal(req, res, id!));
    this.route('POST', `^${G}/cancel$`, (req, res, [id]) => this.cancel(req, res, id!));
    this.route('POST', `^${G}/retry$`, (req, res, [id]) => this.retry(req, res, id!));
    this.route('GET', `^${G}/wait$`, (_r, res, [id], q, signal) => this.wait(res, id!, q, signal));
    this.route('GET', `^${G}/tasks$`, (_r, res, [id], q) => this.tasks(res, id!, q));
    this.route('GET', `^${G}/finished$`, (_r, res, [id], q, signal) =>
      this.finished(res, id!, q, signal),
    );
    this.route('GET', '^/v1/workers$', async (_r, res) => this.workers(res));
    this.route('GET', '^/v1/events$', async (_r, res, _p, q) => {
      const events = await this.store.listEvents(
        intParam(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER),
        intParam(q, 'limit', 100, 1, 1000),
      );
      sendJson(res, 200, { events });
    });
  }

  /** The routes, for the test that holds the OpenAPI document (protocol/openapi.ts) to them. */
  get routeTable(): { method: string; re: RegExp }[] {
    return this.routes.map(({ method, re }) => ({ method, re }));
  }

  private route(method: string, pattern: string, fn: Handler): void {
    this.routes.push({ method, re: new RegExp(pattern), fn });
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    try {
      const url = requestUrl(req.url);
      // Liveness probes need no token; everything else is the client API.
      if (url.pathname !== '/healthz') await this.auth.check(req, 'client');
      let pathMatched = false;
      for (const r of this.routes) {
        const m = r.re.exec(url.pathname);
        if (!m) continue;
        pathMatched = true;
        if (r.method !== req.method) continue;
        await r.fn(req, res, m.slice(1), url.searchParams, ac.signal);
        return;
      }
      req.resume();
      if (pathMatched)
        throw new RegroupError(
          'method_not_allowed',
          `${req.method} is not allowed on ${url.pathname}`,
        );
      throw new RegroupError(
        'not_found',
        `no route ${req.method} ${url.pathname}; see docs/protocol.md for the API`,
      );
    } catch (e) {
      if (!(e instanceof RegroupError) || e.code === 'internal')
        this.o.logger('error', 'request failed', { url: req.url, err: (e as Error).message });
      sendError(res, e);
    }
  }

  private async mustGroup(id: string): Promise<GroupInfo> {
    const g = await this.store.getGroup(id);
    if (!g) throw new RegroupError('group_not_found', `no group with id ${id}`);
    return g;
  }

  private checkInputs(inputs: unknown[], firstIndex: number): void {
    const { maxTasksPerRequest, maxInputBytes } = this.o.limits;
    if (inputs.length > maxTasksPerRequest) {
      throw new RegroupError(
        'too_many_tasks',
        `${inputs.length} tasks in one request; at most ${maxTasksPerRequest} (maxTasksPerRequest): send them in parts with add (the client SDK does this), or raise --max-tasks-per-request`,
      );
    }
    for (let i = 0; i < inputs.length; i++) {
      const size = jsonBytes(inputs[i] ?? null);
      if (size > maxInputBytes) {
        throw new RegroupError(
          'input_too_large',
          `input ${firstIndex + i} is ${size} bytes of JSON; at most ${maxInputBytes} (maxInputBytes): store large data elsewhere and pass a reference, or raise --max-input-bytes`,
        );
      }
    }
  }

  private async submit(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = submitRequest.parse(
      await readJsonBody(req, this.o.limits.maxBodyBytes),
      'submit request',
    );
    this.checkInputs(body.inputs, 0);
    const options = resolveTaskOptions(body.options);
    const outcome = await this.engine.request('createGroups', {
      id: 'g_' + randomBytes(9).toString('base64url').replace(/[-_]/g, 'x'),
      handler: body.handler,
      policy: body.policy ?? 'collectAll',
      idempotencyKey: body.idempotencyKey ?? null,
      open: body.open === true,
      options,
      inputs: body.inputs,
    });
    if (outcome.status === 'conflict') {
      throw new RegroupError(
        'idempotency_conflict',
        `idempotency key "${body.idempotencyKey}" belongs to group ${outcome.group.id} with handler ${outcome.group.handler}; use another key`,
      );
    }
    if (outcome.status === 'created') {
      this.engine.event({
        type: 'group.created',
        groupId: outcome.group.id,
        data: { handler: body.handler, tasks: body.inputs.length, open: body.open === true },
      });
      // debug: one group per request is common (single-task submits), too hot for info.
      this.o.logger('debug', 'group created', {
        groupId: outcome.group.id,
        handler: body.handler,
        tasks: body.inputs.length,
      });
    }
    sendJson(res, outcome.status === 'created' ? 201 : 200, groupView(outcome.group));
  }

  private async add(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const body = addTasksRequest.parse(
      await readJsonBody(req, this.o.limits.maxBodyBytes),
      'add request',
    );
    this.checkInputs(body.inputs, body.offset ?? 0);
    const out = await this.engine.request('addTasks', {
      groupId: id,
      offset: body.offset ?? null,
      inputs: body.inputs,
    });
    switch (out.status) {
      case 'added':
      case 'duplicate':
        return sendJson(res, 200, groupView(out.group));
      case 'not_found':
        throw new RegroupError('group_not_found', `no group with id ${id}`);
      case 'sealed':
        throw new RegroupError(
          out.group.state === 'canceled' ? 'group_canceled' : 'group_sealed',
          `group ${id} is ${out.group.state}: it takes no more tasks`,
        );
      case 'offset_mismatch':
        throw new RegroupError(
          'offset_mismatch',
          `offset ${body.offset} does not follow the group's ${out.group.total} tasks; send offset ${out.group.total}`,
        );
    }
  }

  private async seal(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    await this.optionalEmptyBody(req);
    const out = await this.engine.request('seals', id);
    if (out.status === 'not_found')
      throw new RegroupError('group_not_found', `no group with id ${id}`);
    sendJson(res, 200, groupView(out.group));
  }

  private async cancel(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    await this.optionalEmptyBody(req);
    const out = await this.engine.request('cancels', id);
    if (out.status === 'not_found')
      throw new RegroupError('group_not_found', `no group with id ${id}`);
    this.engine.event({ type: 'group.canceled', groupId: id, data: {} });
    this.o.logger('info', 'group canceled', { groupId: id });
    sendJson(res, 200, groupView(out.group));
  }

  /** Seal and cancel take no body; an empty JSON object is accepted too. */
  private async optionalEmptyBody(req: IncomingMessage): Promise<void> {
    const len = Number(req.headers['content-length'] ?? 0);
    if (len === 0 && req.headers['transfer-encoding'] === undefined) {
      req.resume();
      return;
    }
    emptyRequest.parse(await readJsonBody(req, 4096), 'request body');
  }

  /** The group's failed tasks run again (a new attempt each, budget started over: docs/design.md). */
  private async retry(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const len = Number(req.headers['content-length'] ?? 0);
    if (len === 0 && req.headers['transfer-encoding'] === undefined) req.resume();
    else retryRequest.parse(await readJsonBody(req, 4096), 'retry request');
    const out = await this.engine.request('retries', id);
    switch (out.status) {
      case 'not_found':
        throw new RegroupError('group_not_found', `no group with id ${id}`);
      case 'canceled':
        throw new RegroupError(
          'group_canceled',
          `group ${id} was canceled: its tasks are not retried; submit them again as a new group`,
        );
      case 'retried': {
        if (out.retried > 0) {
          const data = { retried: out.retried };
          this.engine.event({ type: 'group.retried', groupId: id, data });
        }
        const reply: RetryReply = { retried: out.retried, group: groupView(out.group) };
        return sendJson(res, 200, reply);
      }
    }
  }

  private async list(res: ServerResponse, q: URLSearchParams): Promise<void> {
    const limit = intParam(q, 'limit', 50, 1, 1000);
    const before = q.has('before')
      ? intParam(q, 'before', 0, 0, Number.MAX_SAFE_INTEGER)
      : undefined;
    const groups = await this.store.listGroups({
      limit,
      ...(before === undefined ? {} : { before }),
    });
    sendJson(res, 200, { groups: groups.map(groupView) });
  }

  private async wait(
    res: ServerResponse,
    id: string,
    q: URLSearchParams,
    signal: AbortSignal,
  ): Promise<void> {
    const timeoutMs = intParam(q, 'timeoutMs', 30_000, 0, LONG_POLL_MAX_MS);
    // A small done group comes with its tasks: one round trip less for the waiting client.
    const withTasks = intParam(q, 'tasks', 0, 0, 10_000);
    const deadline = this.o.now() + timeoutMs;
    for (;;) {
      const watch = this.waiters.watch(id);
      let g: GroupInfo;
      try {
        g = await this.mustGroup(id);
      } catch (e) {
        watch.cancel();
        throw e;
      }
      const left = deadline - this.o.now();
      const done = isGroupDone(g.state, g);
      if (done || left <= 0 || signal.aborted) {
        watch.cancel();
        if (done && withTasks > 0 && g.total <= withTasks) {
          const tasks = await this.store.listTasks(id, { limit: Math.max(1, g.total) });
          sendJson(res, 200, { ...groupView(g), tasks });
        } else sendJson(res, 200, groupView(g));
        return;
      }
      await watch.wait(left, signal);
    }
  }

  private async tasks(res: ServerResponse, id: string, q: URLSearchParams): Promise<void> {
    await this.mustGroup(id);
    const limit = intParam(q, 'limit', 1000, 1, 10_000);
    const after = intParam(q, 'after', -1, -1, Number.MAX_SAFE_INTEGER);
    const stateRaw = q.get('state');
    if (stateRaw !== null && !TASK_STATES.includes(stateRaw as TaskState)) {
      throw new RegroupError(
        'validation_failed',
        `query parameter state must be one of ${TASK_STATES.join(', ')}`,
      );
    }
    const tasks = await this.store.listTasks(id, {
      after,
      limit,
      ...(stateRaw ? { state: stateRaw as TaskState } : {}),
    });
    const last = tasks[tasks.length - 1];
    sendJson(res, 200, { tasks, next: tasks.length === limit && last ? last.index : null });
  }

  private async finished(
    res: ServerResponse,
    id: string,
    q: URLSearchParams,
    signal: AbortSignal,
  ): Promise<void> {
    const after = intParam(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(q, 'limit', 1000, 1, 10_000);
    const waitMs = intParam(q, 'waitMs', 0, 0, LONG_POLL_MAX_MS);
    const deadline = this.o.now() + waitMs;
    for (;;) {
      const watch = this.waiters.watch(id);
      let g: GroupInfo;
      let tasks: TaskView[];
      try {
        g = await this.mustGroup(id);
        tasks = await this.store.finishedTasks(id, after, limit);
      } catch (e) {
        watch.cancel();
        throw e;
      }
      const done = isGroupDone(g.state, g);
      const left = deadline - this.o.now();
      if (tasks.length > 0 || done || left <= 0 || signal.aborted) {
        watch.cancel();
        const cursor = tasks.length > 0 ? (tasks[tasks.length - 1]!.seq ?? after) : after;
        // The group is read before its tasks, so `done` is only reported once
        // this page reached the end: every task of a done group is final.
        sendJson(res, 200, { tasks, cursor, done: done && tasks.length < limit });
        return;
      }
      await watch.wait(left, signal);
    }
  }

  private workers(res: ServerResponse): void {
    const now = this.o.now();
    const workers = [...this.sessions.all()].map((s) => s.view(now, this.o));
    sendJson(res, 200, { workers });
  }
}
