/**
 * Trees over the worker session: a running task's child groups (ctx.spawn)
 * and the client API calls of their handles. A spawn is checked like a
 * client's submit, queued as a fenced `spawns` op and answered `spawned` once
 * committed. A handle's call names an operation of the client API
 * (GROUP_CALL_OPS), a group and the route's query parameters; it is allowed
 * only on a group under the calling run's own task, and answered by the very
 * handler that answers the HTTP route (long polls included), so a handle
 * behaves as a client's group does.
 */
import { randomBytes } from 'node:crypto';
import { RegroupError } from '../core/errors.js';
import { fact } from '../core/events.js';
import { holdsLease } from '../core/fence.js';
import { resolveTaskOptions } from '../core/options.js';
import type { GroupInfo } from '../core/types.js';
import { GROUP_ID, OPERATIONS } from '../protocol/openapi-routes.js';
import type { GroupCall, GroupReply, Spawn, Spawned } from '../protocol/worker.js';
import type { SpawnOp, SpawnOutcome, Store } from '../store/store.js';
import type { Answer, Call } from './server.js';
import type { Api } from './api.js';
import type { Engine } from './engine.js';
import { scoped } from './facts.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import { queryValidator, routeSchema } from './route-validation.js';
import type { Session } from './sessions.js';
import type { Conn } from './worker-lifecycle.js';
import { addRefusal, fenceRefusal } from './worker-runs.js';

/**
 * Calls one connection may have in flight at once (long polls mostly): a
 * handler that waits on many children at a time is fine, a worker that
 * floods is answered `too_many_requests`.
 */
export const MAX_GROUP_CALLS_PER_CONNECTION = 10_000;
/** How far up a group's parents a call looks for the calling task. */
export const MAX_TREE_DEPTH = 1_000;

const GROUP_ID_RE = new RegExp((GROUP_ID as unknown as { pattern: string }).pattern);

/** A new group id, as a client's submit makes them. */
export function newGroupId(): string {
  return 'g_' + randomBytes(9).toString('base64url').replace(/[-_]/g, 'x');
}

type QueryCheck = (q: unknown) => { value?: unknown; error?: Error };

export class WorkerTree {
  /** Aborted when the connection closes: its long polls stop waiting. */
  /**
   * Per connection, the calls in flight, each with its own abort (a long
   * poll listens on its own signal: thousands of listeners on one shared
   * signal made every add and remove slow).
   */
  private readonly calls = new WeakMap<Conn, Set<AbortController>>();
  private readonly queries = new Map<string, QueryCheck | null>();

  constructor(
    private readonly o: ResolvedCoordinatorOptions,
    private readonly engine: Engine,
    private readonly store: Store,
    private readonly api: Pick<Api, 'handlers'>,
  ) {}

  // ---- spawn -------------------------------------------------------------------

  /**
   * A running task's child group, the one way: checked like a client's
   * submit, queued as a fenced `spawns` op, answered `spawned` once committed.
   * A commit the engine could not make is not answered: the worker sends the
   * spawn again after it resumes, and its key makes that safe.
   */
  spawn(s: Pick<Session, 'workerId' | 'send'>, m: Spawn): void {
    const ref = { taskId: m.taskId, attempt: m.attempt, seq: m.seq };
    const refuse = (code: string, message: string): void =>
      s.send({ t: 'spawned', ...ref, ok: false, code, message });
    const refused = addRefusal(this.o.limits, m.inputs, 'ctx.spawn');
    if (refused !== null) {
      refuse(refused.code, refused.message);
      return;
    }
    let options;
    try {
      options = this.engine.withKeyLimit(resolveTaskOptions(m.options));
    } catch (e) {
      const err = e instanceof RegroupError ? e : new RegroupError('validation_failed', String(e));
      refuse(err.code, `ctx.spawn options: ${err.message}`);
      return;
    }
    const { taskId, attempt, key } = m;
    const parentGroupId = this.engine.leases.get(taskId)?.groupId ?? null;
    const op: SpawnOp = {
      taskId,
      attempt,
      workerId: s.workerId,
      key,
      group: {
        id: newGroupId(),
        handler: m.handler,
        policy: m.policy ?? 'collectAll',
        options,
        inputs: m.inputs,
      },
      keepChildren: m.keepChildren === true,
    };
    this.engine
      .request('spawns', op, (out) =>
        out.status === 'created'
          ? fact(
              'group.created',
              {
                handler: m.handler,
                tasks: m.inputs.length,
                open: false,
                parent: { groupId: out.group.parent?.groupId ?? parentGroupId ?? '', taskId, key },
              },
              { groupId: out.group.id, taskId, workerId: s.workerId },
            )
          : null,
      )
      .then(
        (out) => s.send({ t: 'spawned', ...ref, ...spawnAnswer(op, out) }),
        (e: unknown) =>
          scoped(this.o.logger, { workerId: s.workerId, groupId: parentGroupId, taskId })(
            'warn',
            'spawn not committed',
            { attempt, err: (e as Error).message },
          ),
      );
  }

  // ---- a handle's calls ----------------------------------------------------------

  /**
   * One call of a spawned group's handle. The run must hold its lease, and
   * the group must be under its task (spawned by it, or below one it
   * spawned); any other group is `group_not_found`, so a worker's session is
   * not a key to every group.
   */
  call(conn: Conn, s: Pick<Session, 'workerId' | 'send'>, m: GroupCall): void {
    const inFlight = this.inFlight(conn);
    const reply = (r: Omit<GroupReply, 't' | 'taskId' | 'attempt' | 'seq'>): void =>
      s.send({ t: 'group_reply', taskId: m.taskId, attempt: m.attempt, seq: m.seq, ...r });
    if (inFlight.size >= MAX_GROUP_CALLS_PER_CONNECTION) {
      reply({
        ok: false,
        code: 'too_many_requests',
        message: `${MAX_GROUP_CALLS_PER_CONNECTION} group calls are in flight on this worker's connection; wait for some to end`,
      });
      return;
    }
    const abort = new AbortController();
    inFlight.add(abort);
    this.answer(s, m, abort.signal).then(
      (a) => {
        inFlight.delete(abort);
        reply(a);
      },
      (e: unknown) => {
        inFlight.delete(abort);
        const err =
          e instanceof RegroupError ? e : new RegroupError('internal', (e as Error).message);
        if (err.code === 'internal')
          scoped(this.o.logger, { workerId: s.workerId, taskId: m.taskId })(
            'error',
            'group call failed',
            { op: m.op, err: err.message },
          );
        reply({ ok: false, code: err.code, message: err.message });
      },
    );
  }

  /** The connection closed: its long polls stop waiting (their answers would go nowhere). */
  onClose(conn: Conn): void {
    const inFlight = this.calls.get(conn);
    this.calls.delete(conn);
    for (const abort of inFlight ?? []) abort.abort();
  }

  private inFlight(conn: Conn): Set<AbortController> {
    let set = this.calls.get(conn);
    if (set === undefined) {
      set = new Set();
      this.calls.set(conn, set);
    }
    return set;
  }

  private async answer(
    s: Pick<Session, 'workerId'>,
    m: GroupCall,
    signal: AbortSignal,
  ): Promise<Omit<GroupReply, 't' | 'taskId' | 'attempt' | 'seq'>> {
    const lease = this.engine.leases.get(m.taskId);
    if (!holdsLease(lease, m.attempt, s.workerId))
      throw new RegroupError(
        'stale_attempt',
        `task ${m.taskId} attempt ${m.attempt} no longer holds its lease on this worker: its handles answer nothing more`,
      );
    // A list of groups is a list of this group's children: the parent is the call's group.
    const checked =
      m.op === 'listGroups'
        ? this.checkQuery(m.op, { ...m.query, parent: m.groupId })
        : this.checkQuery(m.op, m.query ?? {});
    if (!GROUP_ID_RE.test(m.groupId) || !(await this.underTask(m.groupId, m.taskId)))
      throw new RegroupError(
        'group_not_found',
        `no group with id ${JSON.stringify(m.groupId.slice(0, 100))} under task ${m.taskId}: a task's handles reach only the groups it spawned and theirs`,
      );
    const params = m.op === 'listGroups' ? {} : { id: m.groupId };
    const call: Call = { params, query: checked, body: {}, signal };
    const answer: Answer = await this.api.handlers[m.op](call);
    return { ok: true, status: answer.status, body: bodyOf(answer) };
  }

  /** The query as the route takes it: converted, held to its ranges, defaults applied. */
  private checkQuery(op: GroupCall['op'], raw: Record<string, string>): Record<string, unknown> {
    let check = this.queries.get(op);
    if (check === undefined) {
      const route = OPERATIONS.find((r) => r.operationId === op);
      const schema = route ? routeSchema(route).querystring : undefined;
      check = schema ? queryValidator(schema) : null;
      this.queries.set(op, check);
    }
    if (check === null) return {};
    const { value, error } = check(raw);
    if (error) throw error;
    return value as Record<string, unknown>;
  }

  /** Whether the group is a child of the task, or below one of its children. */
  private async underTask(groupId: string, taskId: number): Promise<boolean> {
    let id = groupId;
    for (let depth = 0; depth < MAX_TREE_DEPTH; depth++) {
      const g: GroupInfo | null = await this.store.getGroup(id);
      const parent = g?.parent;
      if (!parent) return false;
      if (parent.taskId === taskId) return true;
      id = parent.groupId;
    }
    return false;
  }
}

function bodyOf(a: Answer): unknown {
  if ('json' in a) return JSON.parse(a.json) as unknown;
  if ('body' in a) return a.body;
  return a.text;
}

/** The `spawned` fields for a committed outcome. */
function spawnAnswer(
  op: SpawnOp,
  out: SpawnOutcome,
): Pick<Spawned, 'ok' | 'groupId' | 'code' | 'message'> {
  const task = `task ${op.taskId}`;
  switch (out.status) {
    case 'created':
    case 'existing':
      return { ok: true, groupId: out.group.id };
    case 'conflict':
      return {
        ok: false,
        code: 'idempotency_conflict',
        message: `ctx.spawn key ${JSON.stringify(op.key)} of ${task} first spawned group ${out.group.id} with handler ${JSON.stringify(out.group.handler)}; this call spawns ${JSON.stringify(op.group.handler)}, so nothing was spawned: give spawns that change from run to run keys of their own (ctx.spawn(handler, inputs, { key }))`,
      };
    case 'stale':
    case 'already_final':
      return fenceRefusal(out.status, op, 'spawn');
  }
}
