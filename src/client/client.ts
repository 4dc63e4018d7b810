import { randomUUID } from 'node:crypto';
import { RegroupError } from '../core/errors.js';
import type { GroupPolicy } from '../core/types.js';
import type { GroupView, SubmitRequest, TaskOptionsInput, WorkerView } from '../protocol/http.js';
import { Group, OpenGroup, type ClientContext } from './group.js';
import { resolveClientOptions, type ClientOptions } from './options.js';
import { Transport, type RetryPolicy } from './transport.js';

export interface SubmitOptions {
  /**
   * A second submit with the same key returns the first group. When not given,
   * a random key is made once per call, so retries of that call never make two groups.
   */
  idempotencyKey?: string;
  policy?: GroupPolicy;
  options?: TaskOptionsInput;
  /** Most inputs per request; overrides the client's chunkSize. */
  chunkSize?: number;
}

export interface ListGroupsOptions {
  limit?: number;
  /**
   * Paging: the groups listed after this one, the id of the last group of
   * the previous page (a full page: `limit` groups, more may follow).
   */
  after?: string;
  /**
   * Paging by time: groups created before this (ms). Coarse: groups created
   * in the same millisecond as the last of a page are skipped; use `after`.
   */
  before?: number;
  /** Only the groups a client submitted, not those spawned by tasks (`group.children()` lists those). */
  roots?: boolean;
}

/**
 * The regroup client. `submit` a group of inputs, `wait` for the results.
 *
 *   const client = new Client({ url: 'http://127.0.0.1:7070' });
 *   const squares = await (await client.submit('square', [1, 2, 3])).wait();
 *   client.close();
 */
export class Client {
  private readonly ctx: ClientContext & { transport: Transport };

  constructor(options: ClientOptions) {
    const resolved = resolveClientOptions(options);
    this.ctx = { options: resolved, transport: new Transport(resolved) };
  }

  /** Creates a sealed group of one task per input. Large inputs go in chunks. */
  async submit<R = unknown>(
    handler: string,
    inputs: readonly unknown[],
    opts: SubmitOptions = {},
  ): Promise<Group<R>> {
    const ctx = this.withChunkSize(opts.chunkSize);
    const size = ctx.options.chunkSize;
    if (inputs.length <= size) {
      const view = await this.create(handler, inputs, opts, false);
      return new Group<R>(ctx, view.id);
    }
    const view = await this.create(handler, inputs.slice(0, size), opts, true);
    const group = new OpenGroup<R>(ctx, view.id, size);
    // Not open any more: an earlier submit with this key already sent everything.
    if (view.state !== 'open') return group;
    await group.addFrom(inputs, size);
    await group.seal();
    return group;
  }

  /** Creates an empty open group: `add` inputs, then `seal`. */
  async open<R = unknown>(handler: string, opts: SubmitOptions = {}): Promise<OpenGroup<R>> {
    const view = await this.create(handler, [], opts, true);
    return new OpenGroup<R>(this.withChunkSize(opts.chunkSize), view.id, view.total);
  }

  /** A handle on an existing group (after a restart, say). Makes no request. */
  group<R = unknown>(id: string): Group<R> {
    return new Group<R>(this.ctx, id);
  }

  /** Recent groups, newest first, each with `children` (how many groups its tasks spawned). */
  async listGroups(opts: ListGroupsOptions = {}): Promise<GroupView[]> {
    const q = new URLSearchParams();
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    if (opts.before !== undefined) q.set('before', String(opts.before));
    if (opts.after !== undefined) q.set('after', opts.after);
    if (opts.roots === true) q.set('roots', 'true');
    const query = q.size > 0 ? `?${q.toString()}` : '';
    const reply = await this.get<{ groups: GroupView[] }>(`/v1/groups${query}`);
    return reply.groups;
  }

  /** The workers the coordinator knows. */
  async workers(): Promise<WorkerView[]> {
    return (await this.get<{ workers: WorkerView[] }>('/v1/workers')).workers;
  }

  /** Aborts in-flight requests and long polls; every later call rejects with `closed`. */
  close(): void {
    this.ctx.transport.close();
  }

  private get<T>(path: string): Promise<T> {
    return this.ctx.transport.call<T>({ method: 'GET', path }, this.budget());
  }

  private create(
    handler: string,
    inputs: readonly unknown[],
    opts: SubmitOptions,
    open: boolean,
  ): Promise<GroupView> {
    const body: SubmitRequest = {
      handler,
      inputs: inputs as unknown[],
      idempotencyKey: opts.idempotencyKey ?? randomUUID(),
    };
    if (open) body.open = true;
    if (opts.policy !== undefined) body.policy = opts.policy;
    if (opts.options !== undefined) body.options = opts.options;
    const req = { method: 'POST' as const, path: '/v1/groups', body };
    return this.ctx.transport.call<GroupView>(req, this.budget());
  }

  private budget(): RetryPolicy {
    return { forMs: this.ctx.options.reconnectForMs };
  }

  private withChunkSize(chunkSize: number | undefined): ClientContext {
    if (chunkSize === undefined) return this.ctx;
    if (!Number.isInteger(chunkSize) || chunkSize < 1) {
      throw new RegroupError('validation_failed', 'chunkSize must be an integer >= 1');
    }
    return { ...this.ctx, options: { ...this.ctx.options, chunkSize } };
  }
}
