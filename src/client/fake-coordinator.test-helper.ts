/**
 * An in-memory stand-in for the coordinator's client API (src/protocol/http.ts),
 * for the SDK's own tests only: node:http on 127.0.0.1, groups in a Map, tasks
 * finished by the test. Real end-to-end tests run the real coordinator.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DEFAULT_TASK_OPTIONS,
  type GroupPolicy,
  type TaskError,
  type TaskOptions,
  type TaskState,
} from '../core/types.js';
import type { GroupView, TaskView } from '../protocol/http.js';

/** A request body as the fake reads it (`{}` when there was none). */
export interface Body {
  handler?: string;
  inputs?: unknown[];
  open?: boolean;
  idempotencyKey?: string;
  policy?: GroupPolicy;
  options?: Partial<TaskOptions>;
  offset?: number;
}

export interface Logged {
  method: string;
  path: string;
  body: Body;
  authorization: string | undefined;
}

/**
 * What happens to the next request: a canned error reply; `drop` applies the
 * request but closes the socket unanswered; `pass` handles it normally.
 */
export type Injection =
  { status: number; code: string; headers?: Record<string, string> } | 'drop' | 'pass';

interface FakeGroup {
  view: Omit<
    GroupView,
    'done' | 'total' | 'pending' | 'running' | 'succeeded' | 'failed' | 'canceled'
  >;
  tasks: TaskView[];
  inputs: unknown[];
}

export class FakeCoordinator {
  readonly requests: Logged[] = [];
  readonly inject: Injection[] = [];
  readonly groups = new Map<string, FakeGroup>();
  token: string | undefined;
  /**
   * The byte budget of a page of /tasks and /finished (and of the tasks /wait
   * inlines), counted like the coordinator's: JSON bytes of values and errors,
   * at least one task per page. Default: none.
   */
  pageBytes = Infinity;
  /** Rewrites a reply before it is sent (malformed pages). */
  tamper: ((path: string, reply: unknown) => unknown) | undefined;
  port = 0;
  private server: Server | undefined;
  private readonly keys = new Map<string, string>();
  private waiters = new Set<() => void>();
  private seq = 0;
  private nextTaskId = 1;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = this.port): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops listening and drops every connection (long polls included). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const w of this.waiters) w();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Finishes one task (value: succeeded; error: failed; neither: canceled). */
  finish(groupId: string, index: number, end: { value?: unknown; error?: TaskError }): void {
    const t = this.groups.get(groupId)?.tasks[index];
    if (!t) throw new Error(`no task ${groupId}#${index}`);
    t.state = end.error ? 'failed' : 'value' in end ? 'succeeded' : 'canceled';
    t.attempt = Math.max(t.attempt, 1);
    if ('value' in end) t.value = end.value;
    if (end.error) t.error = end.error;
    t.seq = ++this.seq;
    t.finishedAt = Date.now();
    this.notify();
  }

  /** Finishes every task not final yet with `fn(input)` (a throw fails it), in input order. */
  runAll(groupId: string, fn: (input: unknown) => unknown): void {
    const g = this.groups.get(groupId);
    for (const t of g?.tasks ?? []) {
      if (t.state !== 'pending' && t.state !== 'running') continue;
      try {
        this.finish(groupId, t.index, { value: fn(g?.inputs[t.index]) });
      } catch (e) {
        this.finish(groupId, t.index, { error: { kind: 'error', message: (e as Error).message } });
      }
    }
  }

  view(id: string): GroupView {
    const g = this.groups.get(id);
    if (!g) throw new Error(`no group ${id}`);
    const count = (s: TaskState): number => g.tasks.filter((t) => t.state === s).length;
    const c = {
      total: g.tasks.length,
      pending: count('pending'),
      running: count('running'),
      succeeded: count('succeeded'),
      failed: count('failed'),
      canceled: count('canceled'),
    };
    const sealedDone = g.view.state === 'sealed' && c.pending + c.running === 0;
    const state = sealedDone ? 'done' : g.view.state;
    return { ...g.view, ...c, state, done: state === 'done' || state === 'canceled' };
  }

  private notify(): void {
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
  }

  /** Resolves on the next change, or after `ms`. */
  private changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const url = new URL(req.url ?? '/', 'http://x');
    const body = (text ? JSON.parse(text) : {}) as Body;
    const method = req.method ?? 'GET';
    this.requests.push({
      method,
      path: url.pathname + url.search,
      body,
      authorization: req.headers.authorization,
    });
    const injected = this.inject.shift();
    if (typeof injected === 'object') {
      for (const [k, v] of Object.entries(injected.headers ?? {})) res.setHeader(k, v);
      return send(res, injected.status, err(injected.code));
    }
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
      return send(res, 401, err('unauthorized'));
    }
    const [status, reply] = await this.route(method, url, body);
    if (injected === 'drop') return void res.socket?.destroy();
    send(res, status, this.tamper ? this.tamper(url.pathname, reply) : reply);
  }

  private async route(method: string, url: URL, body: Body): Promise<[number, unknown]> {
    const p = url.pathname;
    if (method === 'POST' && p === '/v1/groups') return this.create(body);
    if (method === 'GET' && p === '/v1/groups') {
      return [200, { groups: [...this.groups.keys()].reverse().map((id) => this.view(id)) }];
    }
    if (method === 'GET' && p === '/v1/workers') return [200, { workers: [] }];
    const m = /^\/v1\/groups\/([^/]+)(?:\/(\w+))?$/.exec(p);
    const id = decodeURIComponent(m?.[1] ?? '');
    const g = this.groups.get(id);
    if (!m) return [404, err('not_found')];
    if (!g) return [404, err('group_not_found')];
    const q = (k: string): number | null =>
      url.searchParams.has(k) ? Number(url.searchParams.get(k)) : null;
    switch (`${method} ${m[2] ?? ''}`) {
      case 'GET ':
        return [200, this.view(id)];
      case 'POST tasks':
        return this.add(g, body);
      case 'POST seal':
        if (g.view.state !== 'open') return [409, err('group_sealed')];
        g.view.state = 'sealed';
        this.notify();
        return [200, this.view(id)];
      case 'POST cancel':
        for (const t of g.tasks)
          if (t.state === 'pending' || t.state === 'running') this.finish(id, t.index, {});
        g.view.state = 'canceled';
        this.notify();
        return [200, this.view(id)];
      case 'GET wait': {
        if (!this.view(id).done) await this.changed(q('timeoutMs') ?? 0);
        const view = this.view(id);
        const n = q('tasks') ?? 0;
        if (!view.done || view.total > n) return [200, view];
        const fit = this.budget(g.tasks);
        return [200, fit.length === g.tasks.length ? { ...view, tasks: fit } : view];
      }
      case 'GET tasks': {
        const after = q('after') ?? -1;
        const page = this.budget(g.tasks.slice(after + 1, after + 1 + (q('limit') ?? 1000)));
        const last = page.at(-1)?.index;
        return [
          200,
          { tasks: page, next: last !== undefined && last < g.tasks.length - 1 ? last : null },
        ];
      }
      case 'GET finished':
        return [
          200,
          await this.finished(id, q('after') ?? 0, q('limit') ?? 1000, q('waitMs') ?? 0),
        ];
      default:
        return [405, err('method_not_allowed')];
    }
  }

  private create(body: Body): [number, unknown] {
    if (body.handler === undefined || !Array.isArray(body.inputs)) {
      return [400, err('validation_failed')];
    }
    const known =
      body.idempotencyKey === undefined ? undefined : this.keys.get(body.idempotencyKey);
    if (known) return [200, this.view(known)];
    const id = `g${this.groups.size + 1}`;
    const g: FakeGroup = {
      view: {
        id,
        handler: body.handler,
        state: body.open ? 'open' : 'sealed',
        policy: body.policy ?? 'collectAll',
        idempotencyKey: body.idempotencyKey ?? null,
        createdAt: Date.now(),
        sealedAt: null,
        finishedAt: null,
        options: { ...DEFAULT_TASK_OPTIONS, ...body.options },
      },
      tasks: [],
      inputs: [],
    };
    this.groups.set(id, g);
    if (body.idempotencyKey) this.keys.set(body.idempotencyKey, id);
    this.append(g, body.inputs);
    return [201, this.view(id)];
  }

  private add(g: FakeGroup, body: Body): [number, unknown] {
    if (!Array.isArray(body.inputs)) return [400, err('validation_failed')];
    if (g.view.state !== 'open') return [409, err('group_sealed')];
    const n = g.tasks.length;
    const offset: number = body.offset ?? n;
    if (offset < n && offset + body.inputs.length <= n) return [200, this.view(g.view.id)];
    if (offset !== n) return [409, err('offset_mismatch')];
    this.append(g, body.inputs);
    return [200, this.view(g.view.id)];
  }

  private append(g: FakeGroup, inputs: unknown[]): void {
    for (const input of inputs) {
      g.inputs.push(input);
      const index = g.tasks.length;
      g.tasks.push({
        taskId: this.nextTaskId++,
        groupId: g.view.id,
        index,
        state: 'pending',
        attempt: 0,
        seq: null,
      });
    }
  }

  private async finished(
    id: string,
    after: number,
    limit: number,
    waitMs: number,
  ): Promise<unknown> {
    const after_ = (): TaskView[] =>
      this.groups
        .get(id)!
        .tasks.filter((t) => t.seq != null && t.seq > after)
        .sort((a, b) => a.seq! - b.seq!);
    if (after_().length === 0 && !this.view(id).done) await this.changed(waitMs);
    const all = after_();
    const page = this.budget(all.slice(0, limit)).map((t) => ({ ...t }));
    const cursor = page.at(-1)?.seq ?? after;
    return { tasks: page, cursor, done: this.view(id).done && all.length === page.length };
  }

  /** The longest prefix of `tasks` within pageBytes, at least one task. */
  private budget(tasks: TaskView[]): TaskView[] {
    let total = 0;
    const bytes = (v: unknown): number =>
      v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v));
    for (let i = 0; i < tasks.length; i++) {
      total += bytes(tasks[i]?.value) + bytes(tasks[i]?.error);
      if (i > 0 && total > this.pageBytes) return tasks.slice(0, i);
    }
    return tasks;
  }
}

function err(code: string): unknown {
  return { error: { code, message: `fake ${code}` } };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
