/**
 * The coordinator: the only writer of task state. Serves the client API
 * (HTTP/JSON) and the worker protocol (WebSocket at /v1/worker) on one port.
 */
import type { AddressInfo } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { RegroupError } from '../core/errors.js';
import { fact } from '../core/events.js';
import type { OperationId } from '../protocol/openapi-routes.js';
import { decodeWorkerFrame } from './worker-frames.js';
import { Engine } from './engine.js';
import { Api, Waiters } from './api.js';
import {
  resolveCoordinatorOptions,
  type CoordinatorOptions,
  type ResolvedCoordinatorOptions,
} from './options.js';
import { Session, Sessions } from './sessions.js';
import { Emitter, type CoordinatorEvents } from './emitter.js';
import { Auth } from './auth.js';
import { WorkerGateway, socketLink, type Conn } from './workers.js';
import type { LeaderState, Leadership } from '../store/leadership.js';
import { openApi } from '../protocol/openapi.js';
import { Dashboard } from './dashboard/dashboard.js';
import { Metrics } from './metrics.js';
import { readiness } from './probes.js';
import { buildServer, type EdgeServer, type RouteHandler, type ServedRoute } from './server.js';

export { LEADER_HEADER } from './server.js';

export type CoordinatorLifecycle = 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * What one term of leadership holds in memory: sessions, lease cache, queued
 * ops. A coordinator without Leadership (SQLite) has one term for its whole
 * life; with Leadership, each takeover starts a fresh term from the store and
 * a step-down throws the old one away.
 */
class Term {
  readonly sessions = new Sessions();
  readonly engine: Engine;
  readonly gateway: WorkerGateway;
  readonly api: Api;

  constructor(c: Coordinator, o: ResolvedCoordinatorOptions, waiters: Waiters) {
    this.engine = new Engine(
      o,
      o.store,
      this.sessions,
      {
        afterTick: (r) => {
          this.gateway.afterTick(r.claimed, r.revoked);
          waiters.notify(r.changedGroups);
          for (const g of r.changedGroups) c.events.emit('groupChanged', g);
        },
        termEnded: (e) => c.leadershipLost(`${e.code}: ${e.message}`),
      },
      c.events,
    );
    this.api = new Api(o, o.store, this.engine, this.sessions, waiters);
    this.gateway = new WorkerGateway(o, this.engine, this.sessions, c.events, this.api);
  }
}

export class Coordinator {
  readonly options: ResolvedCoordinatorOptions;
  /** Typed events for embedders: committed, dispatched, fact (every recorded fact), groupChanged, role. */
  readonly events = new Emitter<CoordinatorEvents>();
  /** Prometheus metrics of this coordinator, served at GET /metrics. */
  readonly metrics: Metrics;
  /** The live dashboard at `/` (docs/operations.md); lives across terms. */
  readonly dashboard: Dashboard;
  private readonly waiters = new Waiters();
  private readonly auth: Auth;
  private readonly leadership: Leadership | null;
  /** The current term; null while standing by. */
  private term: Term | null = null;
  /** The engine of the last term left, until the next term has waited for its last commit. */
  private retired: Engine | null = null;
  private server: EdgeServer | null = null;
  state: CoordinatorLifecycle = 'stopped';
  url = '';
  /** Leader or standby, and where the leader is. Without Leadership: always leader. */
  role: LeaderState = { role: 'standby', epoch: null, leaderUrl: null, leaderId: null };

  constructor(options: CoordinatorOptions) {
    this.options = resolveCoordinatorOptions(options);
    this.leadership = this.options.leadership;
    this.auth = new Auth(
      { client: this.options.clientToken, worker: this.options.workerToken },
      this.options.now,
    );
    this.dashboard = new Dashboard({
      options: this.options,
      events: this.events,
      auth: this.auth,
      sessions: () => this.term?.sessions ?? null,
      waiting: (groupId) => this.term?.engine.waiting(groupId),
      role: () => this.role,
    });
    const o = this.options;
    this.metrics = new Metrics(this.events, {
      store: o.store,
      sessions: () => this.term?.sessions.all() ?? null,
      role: () => this.role,
      now: o.now,
      liveness: o,
      logger: o.logger,
    });
  }

  /** The routes the HTTP server registered (empty before start): the OpenAPI test holds them to the table. */
  get routes(): readonly ServedRoute[] {
    return this.server?.routes ?? [];
  }

  /** The current term's parts. Throw while standing by: use `role` first. */
  get engine(): Engine {
    return this.mustTerm().engine;
  }
  get gateway(): WorkerGateway {
    return this.mustTerm().gateway;
  }
  get sessions(): Sessions {
    return this.mustTerm().sessions;
  }

  private mustTerm(): Term {
    if (!this.term) throw this.notLeader();
    return this.term;
  }

  private notLeader(): RegroupError {
    const where = this.role.leaderUrl
      ? `the leader is at ${this.role.leaderUrl}`
      : 'no leader is known yet; retry shortly';
    return new RegroupError('not_leader', `this coordinator is a standby: ${where}`);
  }

  /**
   * Listens (a busy port is refused before anything is opened), then opens
   * the store. Without Leadership it then restores leases and worker sessions
   * and leads; with Leadership it campaigns and answers as a standby until it
   * leads. Resolves with the URL.
   */
  async start(): Promise<string> {
    const o = this.options;
    this.state = 'starting';
    const server = buildServer({
      options: o,
      auth: this.auth,
      handlers: this.routeHandlers(),
      notLeading: () => this.notLeading(),
      dashboardNeedsToken: () => this.dashboard.mode === 'token',
      onWorkerSocket: (ws) => this.onWorkerSocket(ws),
    });
    try {
      await server.listen();
    } catch (e) {
      this.state = 'stopped';
      await server.close().catch(() => undefined);
      throw e;
    }
    this.server = server;
    const addr = server.app.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.url = `${o.tls ? 'https' : 'http'}://${host}:${addr.port}`;
    // With several coordinators, an unreachable database is a reason to stand
    // by and keep trying, not to exit: the others may be just as cut off.
    let opened = true;
    try {
      await o.store.open();
      if (!this.leadership) await this.takeOffice(null);
    } catch (e) {
      if (!this.leadership || !(e instanceof RegroupError) || !e.retryable) {
        this.state = 'stopped';
        this.server = null;
        await server.close().catch(() => undefined);
        await o.store.close().catch(() => undefined);
        throw e;
      }
      opened = false;
      o.logger('warn', 'the store cannot be opened yet; standing by and retrying', {
        err: e.message,
      });
    }
    this.state = 'running';
    if (!this.leadership) {
      this.role = {
        role: 'leader',
        epoch: null,
        leaderUrl: o.advertiseUrl ?? this.url,
        leaderId: o.coordinatorId,
      };
    }
    o.logger('info', 'coordinator listening', { url: this.url });
    this.dashboard.start();
    if (this.leadership) {
      const me = { id: o.coordinatorId, url: o.advertiseUrl ?? this.url };
      const campaign = (): void => this.leadership?.start(me, (s) => this.onLeaderState(s));
      if (opened) campaign();
      else void this.openLater(campaign);
    }
    return this.url;
  }

  /** Why the API and the worker socket are not served now; null while leading. */
  private notLeading(): { error: RegroupError; leaderUrl: string | null } | null {
    if (this.term) return null;
    if (this.state === 'starting')
      return {
        error: new RegroupError('unavailable', 'the coordinator is starting; retry shortly'),
        leaderUrl: null,
      };
    return { error: this.notLeader(), leaderUrl: this.role.leaderUrl };
  }

  /** A handler for every operation of the route table (src/protocol/openapi-routes.ts). */
  private routeHandlers(): Record<OperationId, RouteHandler> {
    const api =
      (id: keyof Api['handlers']): RouteHandler =>
      (c) =>
        this.mustTerm().api.handlers[id](c);
    const dash = this.dashboard;
    return {
      submit: api('submit'),
      listGroups: api('listGroups'),
      getGroup: api('getGroup'),
      addTasks: api('addTasks'),
      sealGroup: api('sealGroup'),
      cancelGroup: api('cancelGroup'),
      retryGroup: api('retryGroup'),
      waitGroup: api('waitGroup'),
      listTasks: api('listTasks'),
      finishedTasks: api('finishedTasks'),
      listWorkers: api('listWorkers'),
      listEvents: api('listEvents'),
      // Liveness needs no token and says which role this coordinator has.
      health: async () => {
        const r = this.role;
        return {
          status: 200,
          body: { ok: true, role: r.role, epoch: r.epoch, leader: r.leaderUrl },
        };
      },
      openapi: async () => ({ status: 200, body: openApi() }),
      metrics: async () => ({
        status: 200,
        text: await this.metrics.text(),
        type: this.metrics.contentType,
      }),
      ready: async () => {
        const r = await readiness({
          state: this.state,
          role: this.role,
          leading: this.term !== null,
          store: this.options.store,
        });
        return { status: r.ready ? 200 : 503, body: r };
      },
      dashboard: async () => dash.page(),
      dashboardStream: async (_c, http) => {
        await dash.stream(
          http.request.raw,
          http.reply,
          this.auth.holds(http.request.raw, 'client'),
        );
        return null;
      },
      dashboardSnapshot: async () => dash.snapshot(),
      dashboardTasks: async (c) => dash.tasks(c.query),
    };
  }

  /** Retries opening the store every second until it opens (then campaigns) or the coordinator stops. */
  private async openLater(then: () => void): Promise<void> {
    this.events.emit('role', { ...this.role });
    for (let n = 1; this.state === 'running'; n++) {
      await new Promise((r) => setTimeout(r, 1000));
      if (this.state !== 'running') return;
      try {
        await this.options.store.open();
        this.options.logger('info', 'the store is open', { tries: n });
        then();
        return;
      } catch (e) {
        if (n % 10 === 1)
          this.options.logger('warn', 'the store still cannot be opened', {
            err: (e as Error).message,
            tries: n,
          });
      }
    }
  }

  /** Called by Leadership, one call at a time. */
  private async onLeaderState(s: LeaderState): Promise<void> {
    if (this.state !== 'running') return;
    const was = this.role.role;
    if (
      s.role === 'leader' &&
      s.epoch !== null &&
      (was !== 'leader' || s.epoch !== this.role.epoch)
    ) {
      if (this.term) await this.leaveOffice('a new term began');
      try {
        // A commit of the last term still in flight must not land under the new epoch.
        await this.retired?.quiet();
        this.retired = null;
        await this.options.store.beginTerm?.(s.epoch);
        await this.takeOffice(s);
      } catch (e) {
        this.options.logger('error', 'could not take office; standing by again', {
          err: (e as Error).message,
        });
        if (this.term) await this.leaveOffice('taking office failed');
        this.role = { role: 'standby', epoch: null, leaderUrl: null, leaderId: null };
        this.leadership?.lost(`taking office failed: ${(e as Error).message}`);
        return;
      }
    } else if (s.role === 'standby') {
      if (this.term) await this.leaveOffice('another coordinator leads');
      this.role = s;
    } else {
      this.role = s;
      return;
    }
    if (s.role !== was) {
      this.options.logger('info', `role: ${s.role}`, {
        epoch: s.epoch,
        leader: s.leaderUrl,
      });
    }
    this.events.emit('role', { ...this.role });
  }

  /** The store refused a write because a newer leader exists. */
  leadershipLost(reason: string): void {
    this.options.logger('warn', 'lost the leadership', { reason });
    this.leadership?.lost(reason);
  }

  /** Starts a term: leases and worker sessions come from the store. */
  private async takeOffice(s: LeaderState | null): Promise<void> {
    const term = new Term(this, this.options, this.waiters);
    await this.recover(term);
    this.term = term;
    term.gateway.start();
    this.role = s ?? { role: 'leader', epoch: null, leaderUrl: null, leaderId: null };
  }

  /** Ends a term: workers are sent away (they come back through the leader), queued ops are answered `shutting_down`. */
  private async leaveOffice(reason: string): Promise<void> {
    const term = this.term;
    if (!term) return;
    this.term = null;
    this.role = { role: 'standby', epoch: null, leaderUrl: null, leaderId: null };
    this.options.logger('warn', 'stepping down', { reason });
    term.gateway.stop();
    // Connections that have not said hello yet belong to the old term too.
    for (const ws of this.server?.app.websocketServer.clients ?? [])
      ws.close(1001, 'coordinator stepped down');
    this.waiters.wakeAll();
    this.retired = term.engine;
    await term.engine.stop(0);
  }

  /**
   * After a restart or a takeover the leases are still in the store. Each
   * worker that held one gets deadAfterMs to resume its session before it is
   * declared dead, so its runs keep running and are not run twice.
   */
  private async recover(term: Term): Promise<void> {
    const o = this.options;
    const { leases, workers } = await o.store.recover();
    const pending = await o.store.pendingGroups();
    const now = o.now();
    term.engine.restore(leases, pending);
    for (const w of workers) {
      if (w.state === 'dead' || w.state === 'left') continue;
      const draining = w.state === 'draining';
      const s = new Session({ ...w, now, draining, recorded: draining ? 'draining' : 'alive' });
      term.sessions.add(s);
    }
    const orphans: number[] = [];
    for (const l of leases) {
      const s = term.sessions.get(l.workerId);
      if (s) {
        // Sent, as far as this term knows: the worker's resume tells which it really holds.
        s.restoreLease(l, now);
      } else {
        orphans.push(l.taskId);
        term.engine.requeue({ taskId: l.taskId, attempt: l.attempt, workerId: l.workerId }, false);
      }
    }
    const recovered = {
      leases: leases.length,
      workers: term.sessions.size,
      orphans: orphans.length,
    };
    term.engine.record(fact('coordinator.started', recovered));
  }

  /** A worker socket: its frames go to the term that was in office when it connected. */
  private onWorkerSocket(ws: WebSocket): void {
    const term = this.term;
    if (!term) {
      ws.close(1013, 'not the leader');
      return;
    }
    const conn: Conn = {
      link: socketLink(ws),
      session: null,
      helloPending: false,
      closed: false,
    };
    // A socket that never says hello holds a connection for nothing: it gets helloMs.
    const helloTimer = setTimeout(() => {
      if (conn.session === null && !conn.closed) {
        this.options.logger('warn', 'worker socket closed: no hello in time', {
          helloMs: this.options.timeouts.helloMs,
        });
        ws.close(1008, `no hello within ${this.options.timeouts.helloMs} ms`);
        // A peer that does not answer the close handshake is cut a second later.
        setTimeout(() => ws.terminate(), 1000).unref();
      }
    }, this.options.timeouts.helloMs);
    helloTimer.unref();
    ws.on('message', (data: RawData, isBinary: boolean) => {
      let frame: unknown[];
      try {
        frame = decodeWorkerFrame(data, isBinary, this.options.limits);
      } catch (e) {
        const err = e instanceof RegroupError ? e : new RegroupError('protocol_error', String(e));
        conn.link.send([
          {
            t: 'error',
            code: err.code === 'invalid_json' ? 'protocol_error' : err.code,
            message: err.message,
          },
        ]);
        return;
      }
      term.gateway.onFrame(conn, frame);
    });
    ws.on('close', () => {
      clearTimeout(helloTimer);
      term.gateway.onClose(conn);
    });
    ws.on('error', (e) => this.options.logger('warn', 'worker socket error', { err: e.message }));
  }

  /** Stops accepting, commits what is queued, closes sockets and the store. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    this.dashboard.stop();
    const term = this.term;
    term?.gateway.stop();
    this.waiters.wakeAll();
    // The last tick commits while this coordinator still holds office, then it lets go.
    await term?.engine.stop();
    this.term = null;
    await this.leadership?.stop();
    await this.server?.close();
    this.server = null;
    await this.options.store.close();
    this.state = 'stopped';
  }
}
