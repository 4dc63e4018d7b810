/**
 * The handle of a group a task spawned (ctx.spawn) is the client's own Group
 * (src/client/group.ts) over another transport: the worker's session. Each
 * request the Group makes (`GET /v1/groups/:id/wait?...`) becomes a `group`
 * message naming the route's operation, the group and the query, answered
 * `group_reply` with what the HTTP route would have answered. Calls wait
 * across reconnects (sent again after a resumed reconnect; a long poll
 * repeated is harmless) and are rejected when their run ends, the session is
 * lost, or their signal aborts.
 */
import { RegroupError, isErrorCode } from '../core/errors.js';
import type { GroupCallOp, GroupReply } from '../protocol/worker.js';
import { DEFAULT_CLIENT_OPTIONS, type ResolvedClientOptions } from '../client/options.js';
import type { Request, RetryPolicy } from '../client/transport.js';
import { encode, type Encoded } from './wire.js';

interface PendingCall {
  taskId: number;
  attempt: number;
  encoded: Encoded;
  resolve: (body: unknown) => void;
  reject: (e: RegroupError) => void;
}

/** What the worker gives the calls: a way to send, and whether a run has ended (and why). */
export interface CallSender {
  send(m: Encoded): void;
  ended(run: { taskId: number; attempt: number }): boolean;
  endedError(run: { taskId: number; attempt: number }): RegroupError;
}

/** `/v1/groups/{id}{suffix}` and the method: the operation of the route table. */
const ROUTES: Record<string, GroupCallOp> = {
  'GET ': 'getGroup',
  'GET /wait': 'waitGroup',
  'GET /tasks': 'listTasks',
  'GET /finished': 'finishedTasks',
  'POST /cancel': 'cancelGroup',
  'POST /retry': 'retryGroup',
};

const GROUP_PATH = /^\/v1\/groups\/([^/?]+)(\/[a-z]+)?(?:\?(.*))?$/;
/** `GET /v1/groups?parent=...`: a group's children (Group.children()). */
const LIST_PATH = /^\/v1\/groups(?:\?(.*))?$/;

/** The operation, group and query of a Group's request, or a RegroupError for one a handle cannot make. */
export function groupCallOf(req: Request): {
  op: GroupCallOp;
  groupId: string;
  query: Record<string, string>;
} {
  const list = req.method === 'GET' ? LIST_PATH.exec(req.path) : null;
  if (list) {
    const query: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(list[1] ?? '')) query[k] = v;
    const { parent, ...rest } = query;
    if (parent === undefined || parent === '')
      throw new RegroupError(
        'bad_request',
        "a spawned group's handle lists only the children of a group under its task (group.children()), not every group",
      );
    return { op: 'listGroups', groupId: parent, query: rest };
  }
  const m = GROUP_PATH.exec(req.path);
  const op = m ? ROUTES[`${req.method} ${m[2] ?? ''}`] : undefined;
  if (!m || op === undefined)
    throw new RegroupError(
      'bad_request',
      `a spawned group's handle cannot make the request ${req.method} ${req.path.slice(0, 100)}`,
    );
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(m[3] ?? '')) query[k] = v;
  return { op, groupId: decodeURIComponent(m[1]!), query };
}

/** Calls of every run, keyed by (taskId, attempt, seq). */
export class GroupCalls {
  readonly #pending = new Map<string, PendingCall>();

  constructor(private readonly sender: CallSender) {}

  /** Sends one call of a run and waits for its answer. */
  call(
    run: { taskId: number; attempt: number; seq: number },
    req: Request,
    retry: RetryPolicy,
  ): Promise<unknown> {
    const { op, groupId, query } = groupCallOf(req);
    const msg = {
      t: 'group' as const,
      taskId: run.taskId,
      attempt: run.attempt,
      seq: run.seq,
      op,
      groupId,
      ...(Object.keys(query).length > 0 ? { query } : {}),
    };
    const k = `${run.taskId}:${run.attempt}:${run.seq}`;
    return new Promise<unknown>((resolve, reject) => {
      const signal = retry.signal;
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (this.sender.ended(run)) {
        reject(this.sender.endedError(run));
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        this.#pending.delete(k);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        done();
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // A call that is not a wait gives up after the client's reconnect budget, as over HTTP.
      if (Number.isFinite(retry.forMs))
        timer = setTimeout(() => {
          done();
          reject(
            new RegroupError(
              'connection_failed',
              `no answer from the coordinator to ${op} of group ${groupId} in ${retry.forMs} ms`,
            ),
          );
        }, retry.forMs);
      const encoded = encode(msg);
      this.#pending.set(k, {
        taskId: run.taskId,
        attempt: run.attempt,
        encoded,
        resolve: (body) => {
          done();
          resolve(body);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      this.sender.send(encoded);
    });
  }

  /** Settles the call `group_reply` answers; false when nothing was waiting for it. */
  settle(m: GroupReply): boolean {
    const p = this.#pending.get(`${m.taskId}:${m.attempt}:${m.seq}`);
    if (p === undefined) return false;
    if (m.ok) p.resolve(m.body);
    else
      p.reject(
        new RegroupError(
          isErrorCode(m.code) ? m.code : 'internal',
          m.message ?? m.code ?? 'the coordinator refused the call',
        ),
      );
    return true;
  }

  rejectRun(taskId: number, attempt: number, e: RegroupError): void {
    for (const p of [...this.#pending.values()])
      if (p.taskId === taskId && p.attempt === attempt) p.reject(e);
  }

  rejectAll(e: RegroupError): void {
    for (const p of [...this.#pending.values()]) p.reject(e);
  }

  /** The calls to send again after a resumed reconnect. */
  messages(): Encoded[] {
    return [...this.#pending.values()].map((p) => p.encoded);
  }

  get size(): number {
    return this.#pending.size;
  }
}

/** As the client's waits do: the signal's own reason (an Error; anything else is wrapped in one). */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new RegroupError(
    'canceled',
    reason === undefined
      ? 'the wait was aborted'
      : `the wait was aborted: ${typeof reason === 'string' ? reason.slice(0, 200) : typeof reason}`,
  );
}

/** The client options a handle's Group reads (its reconnect budget). */
export const HANDLE_CLIENT_OPTIONS: ResolvedClientOptions = Object.freeze({
  urls: [],
  token: null,
  requestTimeoutMs: DEFAULT_CLIENT_OPTIONS.requestTimeoutMs,
  retryMinMs: DEFAULT_CLIENT_OPTIONS.retryMinMs,
  retryMaxMs: DEFAULT_CLIENT_OPTIONS.retryMaxMs,
  reconnectForMs: DEFAULT_CLIENT_OPTIONS.reconnectForMs,
  chunkSize: DEFAULT_CLIENT_OPTIONS.chunkSize,
  onRetry: null,
});
