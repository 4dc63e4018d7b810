/** The client API: a handler per operation of the route table (src/protocol/openapi-routes.ts). */
import { randomBytes } from 'node:crypto';
import { RegroupError } from '../core/errors.js';
import { fact } from '../core/events.js';
import { isGroupDone } from '../core/group.js';
import { resolveTaskOptions } from '../core/options.js';
import type { GroupInfo, TaskState } from '../core/types.js';
import type { GroupWaiting } from '../core/waiting.js';
import type {
  AddTasksRequest,
  CancelReply,
  GroupView,
  RetryReply,
  SubmitRequest,
} from '../protocol/http.js';
import type { ApiOperation } from '../protocol/openapi-routes.js';
import type { Answer, Call } from './server.js';
import { finishedPageText, tasksPageText, waitReplyText } from './task-pages.js';
import type { Store } from '../store/store.js';
import type { Engine } from './engine.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import type { Sessions } from './sessions.js';
import { jsonBytes } from './workers.js';

/** A group as the API shows it; `waiting` when no connected worker can run its pending tasks. */
export function groupView(g: GroupInfo, waiting?: GroupWaiting): GroupView {
  const view: GroupView = { ...g, done: isGroupDone(g.state, g) };
  if (waiting) view.waiting = waiting;
  return view;
}

/** What woke a wait: the group as a tick committed it, or null (a timeout, an abort, a shutdown). */
type Woken = GroupInfo | null;

/**
 * Long-poll waiters, woken when a tick changed their group. A long poll
 * watches BEFORE it reads the group, so a change committed between the read
 * and the wait is never missed (the watch holds it for the next wait). A
 * watch lasts until canceled, across waits: a tick's notice carries the
 * group as committed, so a waiter woken by a change that does not end its
 * wait waits again without reading the store.
 */
export class Waiters {
  private readonly byGroup = new Map<string, Set<(g: Woken) => void>>();

  watch(groupId: string): {
    wait: (timeoutMs: number, signal: AbortSignal) => Promise<Woken>;
    cancel: () => void;
  } {
    /** A notice no wait took yet (the latest); undefined: none. */
    let held: Woken | undefined;
    let wake: ((g: Woken) => void) | null = null;
    const set = this.byGroup.get(groupId) ?? new Set();
    this.byGroup.set(groupId, set);
    const fn = (g: Woken): void => {
      if (wake) wake(g);
      else held = g;
    };
    set.add(fn);
    const cancel = (): void => {
      wake = null;
      set.delete(fn);
      if (set.size === 0 && this.byGroup.get(groupId) === set) this.byGroup.delete(groupId);
    };
    const wait = (timeoutMs: number, signal: AbortSignal): Promise<Woken> =>
      new Promise<Woken>((resolve) => {
        if (held !== undefined || signal.aborted) {
          const g = held ?? null;
          held = undefined;
          resolve(g);
          return;
        }
        const done = (g: Woken): void => {
          wake = null;
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve(g);
        };
        const onAbort = (): void => done(null);
        const timer = setTimeout(onAbort, timeoutMs);
        signal.addEventListener('abort', onAbort);
        wake = done;
      });
    return { wait, cancel };
  }

  notify(groups: GroupInfo[]): void {
    for (const g of groups) {
      const set = this.byGroup.get(g.id);
      if (set) for (const fn of [...set]) fn(g);
    }
  }

  /** Wakes every waiter (shutdown, stepping down): each reads its group again. */
  wakeAll(): void {
    for (const [, set] of this.byGroup) for (const fn of [...set]) fn(null);
  }
}

const ok = (body: unknown, status = 200): Answer => ({ status, body });

/** GET /v1/groups's query, as the route table checked it. */
interface ListQuery {
  limit: number;
  before?: number;
  roots?: 'true' | 'false';
  parent?: string;
  after?: string;
}

/** The client API of one term: a handler per operation of the route table (protocol/openapi-routes.ts). */
export class Api {
  readonly handlers: Record<ApiOperation, (c: Call) => Promise<Answer>>;

  constructor(
    private readonly o: ResolvedCoordinatorOptions,
    private readonly store: Store,
    private readonly engine: Engine,
    private readonly sessions: Sessions,
    private readonly waiters: Waiters,
  ) {
    const id = (c: Call): string => c.params.id!;
    const q = (c: Call, name: string): number => c.query[name] as number;
    this.handlers = {
      submit: (c) => this.submit(c.body as SubmitRequest),
      listGroups: (c) => this.list(c.query as unknown as ListQuery),
      getGroup: (c) => this.getGroup(id(c)),
      addTasks: (c) => this.add(id(c), c.body as AddTasksRequest),
      sealGroup: (c) => this.seal(id(c)),
      cancelGroup: (c) => this.cancel(id(c)),
      retryGroup: (c) => this.retry(id(c)),
      waitGroup: (c) => this.wait(id(c), q(c, 'timeoutMs'), q(c, 'tasks'), c.signal),
      listTasks: (c) =>
        this.tasks(id(c), q(c, 'after'), q(c, 'limit'), c.query['state'] as TaskState | undefined),
      finishedTasks: (c) =>
        this.finished(
          id(c),
          { after: q(c, 'after'), limit: q(c, 'limit') },
          q(c, 'waitMs'),
          c.signal,
        ),
      listWorkers: async () => this.workers(),
      listEvents: async (c) =>
        ok({ events: await this.store.listEvents(q(c, 'after'), q(c, 'limit')) }),
    };
  }

  /** The group's view, with why it waits (the engine's index, as of its last tick). */
  private view(g: GroupInfo): GroupView {
    return groupView(g, this.engine.waiting(g.id));
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

  private async submit(body: SubmitRequest): Promise<Answer> {
    this.checkInputs(body.inputs, 0);
    const options = this.engine.withKeyLimit(resolveTaskOptions(body.options));
    const outcome = await this.engine.request(
      'createGroups',
      {
        id: 'g_' + randomBytes(9).toString('base64url').replace(/[-_]/g, 'x'),
        handler: body.handler,
        policy: body.policy ?? 'collectAll',
        idempotencyKey: body.idempotencyKey ?? null,
        open: body.open === true,
        options,
        inputs: body.inputs,
      },
      (out) =>
        out.status === 'created'
          ? fact(
              'group.created',
              { handler: body.handler, tasks: body.inputs.length, open: body.open === true },
              { groupId: out.group.id },
            )
          : null,
    );
    if (outcome.status === 'conflict') {
      throw new RegroupError(
        'idempotency_conflict',
        `idempotency key "${body.idempotencyKey}" belongs to group ${outcome.group.id} with handler ${outcome.group.handler}; use another key`,
      );
    }
    return ok(this.view(outcome.group), outcome.status === 'created' ? 201 : 200);
  }

  private async add(id: string, body: AddTasksRequest): Promise<Answer> {
    this.checkInputs(body.inputs, body.offset ?? 0);
    const out = await this.engine.request('addTasks', {
      groupId: id,
      offset: body.offset ?? null,
      inputs: body.inputs,
    });
    switch (out.status) {
      case 'added':
      case 'duplicate':
        return ok(this.view(out.group));
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

  private async seal(id: string): Promise<Answer> {
    const out = await this.engine.request('seals', id);
    if (out.status === 'not_found')
      throw new RegroupError('group_not_found', `no group with id ${id}`);
    return ok(this.view(out.group));
  }

  private async cancel(id: string): Promise<Answer> {
    // Canceling a group that had ended (with no live descendant) changes nothing and records nothing.
    const out = await this.engine.request('cancels', id, (o) =>
      o.status === 'canceled' && (o.changed || o.descendants > 0)
        ? fact(
            'group.canceled',
            o.descendants > 0
              ? { canceled: o.group.canceled, descendants: o.descendants }
              : { canceled: o.group.canceled },
            { groupId: id },
          )
        : null,
    );
    if (out.status === 'not_found')
      throw new RegroupError('group_not_found', `no group with id ${id}`);
    const reply: CancelReply = { ...this.view(out.group), descendants: out.descendants };
    return ok(reply);
  }

  /** The group's failed tasks run again (a new attempt each, budget started over: docs/design.md). */
  private async retry(id: string): Promise<Answer> {
    const out = await this.engine.request('retries', id, (o) =>
      o.status === 'retried' && o.retried > 0
        ? fact('group.retried', { retried: o.retried }, { groupId: id })
        : null,
    );
    switch (out.status) {
      case 'not_found':
        throw new RegroupError('group_not_found', `no group with id ${id}`);
      case 'canceled':
        throw new RegroupError(
          'group_canceled',
          `group ${id} was canceled: its tasks are not retried; submit them again as a new group`,
        );
      case 'retried': {
        const reply: RetryReply = { retried: out.retried, group: this.view(out.group) };
        return ok(reply);
      }
    }
  }

  private async list(q: ListQuery): Promise<Answer> {
    if (q.parent !== undefined) return this.children(q.parent, q);
    if (q.after !== undefined && q.before !== undefined)
      throw new RegroupError(
        'validation_failed',
        'query parameters after and before do not go together: page with after=<the next of the previous page>',
      );
    if (q.after !== undefined && (await this.store.getGroup(q.after)) === null)
      throw new RegroupError(
        'validation_failed',
        `query parameter after must be the id of a group (the next of the previous page); ${q.after} is no group`,
      );
    const groups = await this.store.listGroups({
      limit: q.limit,
      ...(q.before === undefined ? {} : { before: q.before }),
      ...(q.after === undefined ? {} : { after: q.after }),
      ...(q.roots === 'true' ? { roots: true } : {}),
    });
    const last = groups[groups.length - 1];
    const next = groups.length === q.limit && last ? last.id : null;
    return ok({ groups: await this.withChildren(groups.map((g) => this.view(g))), next });
  }

  /** A group's children in creation order, paged by the last child's id (`next`). */
  private async children(parent: string, q: ListQuery): Promise<Answer> {
    if (q.before !== undefined || q.roots !== undefined) {
      const which = q.before !== undefined ? 'before' : 'roots';
      throw new RegroupError(
        'validation_failed',
        `query parameter ${which} does not go with parent: a group's children are paged with after=<the next of the previous page>`,
      );
    }
    await this.mustGroup(parent);
    if (q.after !== undefined) {
      const from = await this.store.getGroup(q.after);
      if (from?.parent?.groupId !== parent) {
        throw new RegroupError(
          'validation_failed',
          `query parameter after must be the id of a child of group ${parent} (the next of the previous page); ${q.after} is ${from ? 'not one of its children' : 'no group'}`,
        );
      }
    }
    const groups = await this.store.listChildren(parent, {
      limit: q.limit,
      ...(q.after === undefined ? {} : { after: q.after }),
    });
    const last = groups[groups.length - 1];
    const next = groups.length === q.limit && last ? last.id : null;
    return ok({ groups: await this.withChildren(groups.map((g) => this.view(g))), next });
  }

  /** The views with how many children each has (one read of the children index for all). */
  private async withChildren(views: GroupView[]): Promise<GroupView[]> {
    const counts = await this.store.countChildren(views.map((v) => v.id));
    for (const v of views) v.children = counts.get(v.id) ?? 0;
    return views;
  }

  private async getGroup(id: string): Promise<Answer> {
    const [view] = await this.withChildren([this.view(await this.mustGroup(id))]);
    return ok(view);
  }

  private async wait(
    id: string,
    timeoutMs: number,
    withTasks: number,
    signal: AbortSignal,
  ): Promise<Answer> {
    const deadline = this.o.now() + timeoutMs;
    const watch = this.waiters.watch(id);
    try {
      let g = await this.mustGroup(id);
      for (;;) {
        const left = deadline - this.o.now();
        if (isGroupDone(g.state, g) || left <= 0 || signal.aborted) {
          // A small done group comes with its tasks when their results fit one page.
          return { status: 200, json: await waitReplyText(this.store, this.view(g), withTasks) };
        }
        // A tick's notice carries the group as committed: a change that does not end
        // the wait costs no read (thousands of waiting parents, each woken per child).
        g = (await watch.wait(left, signal)) ?? (await this.mustGroup(id));
      }
    } finally {
      watch.cancel();
    }
  }

  private async tasks(
    id: string,
    after: number,
    limit: number,
    state: TaskState | undefined,
  ): Promise<Answer> {
    await this.mustGroup(id);
    const q = { after, limit, ...(state ? { state } : {}) };
    return { status: 200, json: await tasksPageText(this.store, id, q) };
  }

  private async finished(
    id: string,
    page: { after: number; limit: number },
    waitMs: number,
    signal: AbortSignal,
  ): Promise<Answer> {
    const { after, limit } = page;
    const deadline = this.o.now() + waitMs;
    const watch = this.waiters.watch(id);
    try {
      for (;;) {
        // The group is read before its tasks, so `done` is only reported once
        // this page reached the end: every task of a done group is final.
        const g = await this.mustGroup(id);
        const done = isGroupDone(g.state, g);
        const page = await finishedPageText(this.store, this.view(g), { after, limit });
        const left = deadline - this.o.now();
        if (!page.empty || done || left <= 0 || signal.aborted)
          return { status: 200, json: page.text };
        await watch.wait(left, signal);
      }
    } finally {
      watch.cancel();
    }
  }

  private workers(): Answer {
    const now = this.o.now();
    const workers = this.sessions.views(now, this.o);
    return ok({ workers });
  }
}
