import { RegroupError } from '../core/errors.js';
import type { TaskState } from '../core/types.js';
import type { CancelReply, GroupView, RetryReply, TaskView } from '../protocol/http.js';
import { LONG_POLL_MS, LONG_POLL_SLACK_MS, type ResolvedClientOptions } from './options.js';
import { GroupFailedError, toOutcome, type Outcome } from './outcome.js';
import type { RetryPolicy, Transport } from './transport.js';

/**
 * What a Group needs of its Client: something that carries its requests (the
 * client's HTTP transport, or a worker's session for the handle of a group a
 * task spawned) and the client's options.
 */
export interface ClientContext {
  transport: Pick<Transport, 'call'>;
  options: ResolvedClientOptions;
}

export interface WaitOptions {
  /** Stops waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface TasksOptions {
  /** Tasks with an index greater than this (the `next` of the previous page). Default: from the first. */
  after?: number;
  /** Most tasks in the page, 1..10,000. Default 1000. */
  limit?: number;
  /** Only tasks in this state. */
  state?: TaskState;
}

/**
 * One page of a group's tasks in input order; `next` is the `after` of the
 * next page, null at the end. Pages are bounded by bytes of results as well as
 * by `limit`, so a page may hold fewer than `limit` tasks (one at least) and
 * still have a `next`: only `next: null` ends the listing.
 */
export interface TasksPage {
  tasks: TaskView[];
  next: number | null;
}

export interface ResultsOptions extends WaitOptions {
  /** Most tasks per request. Default 1000. */
  limit?: number;
}

export interface ChildrenOptions {
  /** Children created after this one (the `next` of the previous page). Default: from the first. */
  after?: string;
  /** Most groups in the page, 1..1000. Default 50. */
  limit?: number;
}

/**
 * One page of a group's children (the groups its tasks spawned, any state)
 * in the order they were created; `next` is the `after` of the next page,
 * null at the end. Each view carries `children`, its own number of children.
 */
export interface ChildrenPage {
  groups: GroupView[];
  next: string | null;
}

const PAGE = 1000;

interface FinishedPage {
  tasks: TaskView[];
  cursor: number;
  done: boolean;
}

/**
 * A handle on one group, by id. Holds no state of its own: any process can
 * make one with `client.group(id)` and wait on it. Waiting survives a
 * coordinator restart (connection errors and 503s are retried until the group
 * is done, the client is closed or the signal aborts); 4xx errors reject at once.
 */
export class Group<R = unknown> {
  constructor(
    protected readonly ctx: ClientContext,
    readonly id: string,
  ) {}

  /** The group's counters and state. */
  status(): Promise<GroupView> {
    return this.request('GET', '', this.budget());
  }

  /**
   * Cancels every task not final yet, and every live group under this one
   * (spawned by its tasks, and so on down). Resolves with the group after
   * and `descendants`, how many groups under it this cancel ended.
   */
  cancel(): Promise<CancelReply> {
    return this.request('POST', '/cancel', this.budget(), {});
  }

  /** One page of the group's children (the groups its tasks spawned), oldest first. */
  async children(opts: ChildrenOptions = {}): Promise<ChildrenPage> {
    const q = new URLSearchParams({ parent: this.id });
    if (opts.after !== undefined) q.set('after', opts.after);
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    const req = { method: 'GET' as const, path: `/v1/groups?${q.toString()}` };
    const page = await this.ctx.transport.call<{ groups: GroupView[]; next?: string | null }>(
      req,
      this.budget(),
    );
    return { groups: page.groups, next: page.next ?? null };
  }

  /**
   * Runs the group's failed tasks again: each goes back to pending for a new
   * attempt, with its attempt budget started over. Resolves with how many were
   * retried (0 when none had failed) and the group after. A canceled group
   * rejects with `group_canceled`.
   */
  retry(): Promise<RetryReply> {
    return this.request('POST', '/retry', this.budget(), {});
  }

  /** One page of the group's tasks, in input order, as they are now (any state). */
  tasks(opts: TasksOptions = {}): Promise<TasksPage> {
    const q = new URLSearchParams();
    if (opts.after !== undefined) q.set('after', String(opts.after));
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    if (opts.state !== undefined) q.set('state', opts.state);
    const query = q.size > 0 ? `?${q.toString()}` : '';
    return this.request('GET', `/tasks${query}`, this.budget());
  }

  /** The results in input order; rejects with GroupFailedError (`group_failed`) if any task did not succeed. */
  async wait(opts: WaitOptions = {}): Promise<R[]> {
    const outcomes = await this.waitSettled(opts);
    if (outcomes.some((o) => o.state !== 'succeeded'))
      throw new GroupFailedError(this.id, outcomes);
    return outcomes.map((o) => o.value as R);
  }

  /**
   * Every task's outcome in input order, once the group is done. A small
   * group's tasks come with the wait's reply; a larger one (more tasks, or
   * more bytes of results than one page holds) is read page by page.
   */
  async waitSettled(opts: WaitOptions = {}): Promise<Outcome<R>[]> {
    const view = await this.waitDone(opts.signal);
    const outcomes: Outcome<R>[] = [];
    const take = (tasks: readonly TaskView[]): void => {
      for (const t of tasks) {
        if (t.index !== outcomes.length) throw outOfOrder(this.id, outcomes.length, t.index);
        outcomes.push(toOutcome<R>(t));
      }
    };
    if (view.tasks && view.tasks.length === view.total) {
      take(view.tasks);
      return outcomes;
    }
    let after: number | null = null;
    do {
      const q: string = after === null ? '' : `&after=${after}`;
      const page: TasksPage = await this.request('GET', `/tasks?limit=${PAGE}${q}`, {
        forMs: Infinity,
        signal: opts.signal,
      });
      take(page.tasks);
      // A page that says more follow must have made progress and end where the next begins.
      const last = outcomes.length - 1;
      if (page.next !== null && (page.tasks.length === 0 || page.next !== last))
        throw outOfOrder(this.id, last, page.next);
      after = page.next;
    } while (after !== null);
    if (outcomes.length !== view.total) throw outOfOrder(this.id, view.total, outcomes.length);
    return outcomes;
  }

  /** Outcomes in finishing order, as tasks finish; ends when the group is done. */
  async *results(opts: ResultsOptions = {}): AsyncGenerator<Outcome<R>, void, undefined> {
    const retry: RetryPolicy = { forMs: Infinity, signal: opts.signal };
    const limit = opts.limit ?? PAGE;
    let cursor: number | null = null;
    for (;;) {
      const after: string = cursor === null ? '' : `&after=${cursor}`;
      const path = `/finished?limit=${limit}&waitMs=${LONG_POLL_MS}${after}`;
      const page: FinishedPage = await this.request('GET', path, retry, undefined, true);
      // The cursor of a page is its last task's seq; an empty page keeps it.
      const last = page.tasks.at(-1);
      if (page.cursor !== (last?.seq ?? cursor ?? page.cursor))
        throw outOfOrder(this.id, last?.seq ?? cursor, page.cursor);
      // Outcomes are made as they are yielded: a page's raw tasks are all the
      // generator holds, and the caller may let each outcome go.
      for (const t of page.tasks) yield toOutcome<R>(t);
      // `done` is reported once the group is done and this page reached the end:
      // a page shorter than `limit` (cut by bytes) is not the end by itself.
      if (page.done) return;
      cursor = page.cursor;
    }
  }

  /** Long polls until the group is done. */
  private async waitDone(
    signal: AbortSignal | undefined,
  ): Promise<GroupView & { tasks?: TaskView[] }> {
    for (;;) {
      const path = `/wait?timeoutMs=${LONG_POLL_MS}&tasks=${PAGE}`;
      const view: GroupView & { tasks?: TaskView[] } = await this.request(
        'GET',
        path,
        { forMs: Infinity, signal },
        undefined,
        true,
      );
      if (view.done) return view;
    }
  }

  protected budget(): RetryPolicy {
    return { forMs: this.ctx.options.reconnectForMs };
  }

  protected request<T>(
    method: 'GET' | 'POST',
    suffix: string,
    retry: RetryPolicy,
    body?: unknown,
    longPoll = false,
  ): Promise<T> {
    const path = `/v1/groups/${encodeURIComponent(this.id)}${suffix}`;
    const timeoutMs = longPoll ? LONG_POLL_MS + LONG_POLL_SLACK_MS : undefined;
    return this.ctx.transport.call<T>({ method, path, body, timeoutMs }, retry);
  }
}

function outOfOrder(id: string, expected: number | null, got: number | null): RegroupError {
  return new RegroupError(
    'internal',
    `the coordinator paged the tasks of group ${id} out of order (expected ${expected}, got ${got})`,
  );
}

/**
 * A group created `open`: takes more inputs with `add` until `seal`. Each add
 * carries the offset its first input takes, so a request retried after a lost
 * reply is not applied twice. Adds run one after another in call order.
 */
export class OpenGroup<R = unknown> extends Group<R> {
  private nextOffset: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(ctx: ClientContext, id: string, total: number) {
    super(ctx, id);
    this.nextOffset = total;
  }

  /** Adds inputs at the end of the group, in chunks of `chunkSize`. */
  add(inputs: readonly unknown[]): Promise<GroupView> {
    return this.enqueue(() => (inputs.length === 0 ? this.status() : this.addFrom(inputs, 0)));
  }

  /** No more inputs; the group is done once every task is final. */
  seal(): Promise<GroupView> {
    return this.enqueue(async () => {
      try {
        return await this.request<GroupView>('POST', '/seal', this.budget(), {});
      } catch (e) {
        // A seal retried after a lost reply finds the group sealed already.
        if (e instanceof RegroupError && e.code === 'group_sealed') return this.status();
        throw e;
      }
    });
  }

  /** Sends `inputs[start..]` chunk by chunk; the client's submit uses it for the rest of a large group. */
  async addFrom(inputs: readonly unknown[], start: number): Promise<GroupView> {
    const size = this.ctx.options.chunkSize;
    let view: GroupView | undefined;
    for (let i = start; i < inputs.length; i += size) {
      const chunk = inputs.slice(i, i + size);
      const body = { inputs: chunk, offset: this.nextOffset };
      view = await this.request<GroupView>('POST', '/tasks', this.budget(), body);
      this.nextOffset += chunk.length;
    }
    return view ?? this.status();
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
