/**
 * The coordinator: the only writer of task state. Serves the client API
 * (HTTP/JSON) and the worker protocol (WebSocket at /v1/worker) on one port.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { RegroupError } from '../core/errors.js';
import { WORKER_PATH, type CoordinatorMessage } from '../protocol/worker.js';
import { decodeWorkerFrame } from './worker-frames.js';
import { Engine } from './engine.js';
import { HttpApi, Waiters } from './http-api.js';
import {
  resolveCoordinatorOptions,
  type CoordinatorOptions,
  type ResolvedCoordinatorOptions,
} from './options.js';
import { Session, Sessions } from './sessions.js';
import { Emitter, type CoordinatorEvents } from './emitter.js';
import { Auth } from './auth.js';
import { WorkerGateway, type Conn } from './workers.js';
import type { LeaderState, Leadership } from '../store/leadership.js';
import { requestUrl, sendError, sendJson } from './http-util.js';
import { openApi } from '../protocol/openapi.js';
import { Dashboard } from './dashboard/dashboard.js';
import { Metrics } from './metrics.js';
import { readiness } from './probes.js';

export type CoordinatorLifecycle = 'starting' | 'running' | 'stopping' | 'stopped';

/** The header a standby puts on its `not_leader` answers: where the leader is. */
export const LEADER_HEADER = 'regroup-leader';
/** GET routes answered without a token, by leader and standby alike (besides /healthz). */
const PROBE_ROUTES: readonly string[] = ['/metrics', '/readyz', '/openapi.json'];
/**
 * Every GET path the coordinator answers itself, outside the client API's
 * route table: the OpenAPI test holds the document to it (with the dashboard's).
 */
export const COORDINATOR_ROUTES: readonly string[] = ['/healthz', ...PROBE_ROUTES];

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
  readonly api: HttpApi;

  constructor(c: Coordinator, o: ResolvedCoordinatorOptions, waiters: Waiters, auth: Auth) {
    this.engine = new Engine(
      o,
      o.store,
      this.sessions,
      {
        afterTick: (r) => {
          this.gateway.afterTick(r.claimed, r.revoked);
          waiters.notify(r.changedGroups);
          for (const g of r.changedGroups) {
            c.events.emit('groupChanged', g);
            if (g.state !== 'done') continue;
            const data = {
              total: g.total,
              succeeded: g.succeeded,
              failed: g.failed,
              canceled: g.canceled,
            };
            this.engine.event({ type: 'group.done', groupId: g.id, data });
            o.logger('debug', 'group done', { groupId: g.id, ...data });
          }
        },
        termEnded: (e) => c.leadershipLost(`${e.code}: ${e.message}`),
      },
      c.events,
    );
    this.gateway = new WorkerGateway(o, this.engine, this.sessions, c.events);
    this.api = new HttpApi(o, o.store, this.engine, this.sessions, waiters, auth);
  }
}

export class Coordinator {
  readonly options: ResolvedCoordinatorOptions;
  /** Typed events for embedders: committed, dispatched, workerDead, groupChanged, role. */
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
  private server: Server | null = null;
  private wss: WebSocketServer | null = null;
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
   * Opens the store and listens. Without Leadership it then restores leases
   * and worker sessions and leads; with Leadership it campaigns and answers
   * as a standby until it leads. Resolves with the URL.
   */
  async start(): Promise<string> {
    const o = this.options;
    this.state = 'starting';
    // With several coordinators, an unreachable database is a reason to stand
    // by and keep trying, not to exit: the others may be just as cut off.
    let opened = true;
    try {
      await o.store.open();
    } catch (e) {
      if (!this.leadership || !(e instanceof RegroupError) || !e.retryable) throw e;
      opened = false;
      o.logger('warn', 'the store cannot be opened yet; standing by and retrying', {
        err: e.message,
      });
    }
    if (!this.leadership) await this.takeOffice(null);
    const handler = (req: IncomingMessage, res: import('node:http').ServerResponse): void =>
      this.onRequest(req, res);
    const server: Server = o.tls
      ? createTlsServer({ cert: o.tls.cert, key: o.tls.key }, handler)
      : createServer(handler);
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 70_000;
    server.requestTimeout = 0;
    const wss = new WebSocketServer({ noServer: true, maxPayload: o.limits.maxMessageBytes });
    server.on(
      'upgrade',
      (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        void this.onUpgrade(wss, req, socket, head),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.wss = wss;
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.url = `${o.tls ? 'https' : 'http'}://${host}:${addr.port}`;
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
    const term = new Term(this, this.options, this.waiters, this.auth);
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
    for (const ws of this.wss?.clients ?? []) ws.close(1001, 'coordinator stepped down');
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
    const now = o.now();
    term.engine.restore(leases);
    for (const w of workers) {
      if (w.state === 'dead' || w.state === 'left') continue;
      const s = new Session({ ...w, now, recorded: w.state === 'draining' ? 'draining' : 'alive' });
      s.draining = w.state === 'draining';
      term.sessions.add(s);
    }
    const orphans: number[] = [];
    for (const l of leases) {
      const s = term.sessions.get(l.workerId);
      if (s) {
        // Sent, as far as this term knows: the worker's resume tells which it really holds.
        s.leases.add(l.taskId);
        s.sent.set(l.taskId, now);
      } else {
        orphans.push(l.taskId);
        term.engine.requeue({ taskId: l.taskId, attempt: l.attempt, workerId: l.workerId }, false);
      }
    }
    term.engine.event({
      type: 'coordinator.started',
      data: { leases: leases.length, workers: term.sessions.size, orphans: orphans.length },
    });
    if (leases.length > 0 || workers.length > 0) {
      o.logger('info', 'recovered state', {
        leases: leases.length,
        workers: term.sessions.size,
        orphans: orphans.length,
      });
    }
  }

  private onRequest(req: IncomingMessage, res: import('node:http').ServerResponse): void {
    let path = '';
    try {
      path = requestUrl(req.url).pathname;
    } catch {
      // An unparsable target: the API answers it (404).
    }
    // Metrics, readiness and the API's description need no token either
    // (docs/operations.md): no task data in them. A standby answers them too.
    if (req.method === 'GET' && PROBE_ROUTES.includes(path)) {
      req.resume();
      void this.serveProbe(path, res);
      return;
    }
    // The dashboard checks the token itself, by its mode (public, token, off).
    if (Dashboard.owns(path)) {
      void this.dashboard.handle(req, res, requestUrl(req.url));
      return;
    }
    // Liveness needs no token and says which role this coordinator has.
    if (path === '/healthz' && req.method === 'GET') {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      const r = this.role;
      res.end(JSON.stringify({ ok: true, role: r.role, epoch: r.epoch, leader: r.leaderUrl }));
      return;
    }
    const term = this.term;
    if (term) {
      void term.api.handle(req, res);
      return;
    }
    req.resume();
    // A standby checks the token too: only clients learn where the leader is.
    this.auth.check(req, 'client').then(
      () => {
        if (this.role.leaderUrl) res.setHeader(LEADER_HEADER, this.role.leaderUrl);
        sendError(res, this.notLeader());
      },
      (e: unknown) => sendError(res, e),
    );
  }

  /** GET /metrics (Prometheus text) and GET /readyz (200 when leading with a store that answers, else 503). */
  private async serveProbe(path: string, res: import('node:http').ServerResponse): Promise<void> {
    try {
      if (path === '/openapi.json') {
        sendJson(res, 200, openApi());
        return;
      }
      if (path === '/metrics') {
        const text = await this.metrics.text();
        res.writeHead(200, { 'content-type': this.metrics.contentType });
        res.end(text);
        return;
      }
      const r = await readiness({
        state: this.state,
        role: this.role,
        leading: this.term !== null,
        store: this.options.store,
      });
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(r));
    } catch (e) {
      this.options.logger('error', `${path} failed`, { err: (e as Error).message });
      sendError(res, e);
    }
  }

  /** Only the worker path upgrades, and only with the worker token when one is set. */
  private async onUpgrade(
    wss: WebSocketServer,
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ): Promise<void> {
    socket.on('error', () => socket.destroy());
    try {
      if (requestUrl(req.url).pathname !== WORKER_PATH) {
        throw new RegroupError('not_found', `WebSocket upgrades are served at ${WORKER_PATH} only`);
      }
      await this.auth.check(req, 'worker');
      if (!this.term) throw this.notLeader();
    } catch (e) {
      refuseUpgrade(
        socket,
        e instanceof RegroupError ? e : new RegroupError('bad_request', String(e)),
        e instanceof RegroupError && e.code === 'not_leader' ? this.role.leaderUrl : null,
      );
      return;
    }
    const term = this.term;
    wss.handleUpgrade(req, socket, head, (ws) => this.onWorkerSocket(ws, term));
  }

  private onWorkerSocket(ws: WebSocket, term: Term): void {
    const conn: Conn = {
      link: {
        send: (messages: CoordinatorMessage[]) => {
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(messages));
        },
        close: (code: number, reason: string) => ws.close(code, reason),
      },
      session: null,
      helloPending: false,
      closed: false,
    };
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
    ws.on('close', () => term.gateway.onClose(conn));
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
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    this.wss?.close();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.options.store.close();
    this.state = 'stopped';
  }
}

function refuseUpgrade(socket: Duplex, e: RegroupError, leaderUrl: string | null): void {
  const body = JSON.stringify(e.toWire());
  const reason =
    e.status === 401
      ? 'Unauthorized'
      : e.status === 404
        ? 'Not Found'
        : e.status === 503
          ? 'Service Unavailable'
          : 'Bad Request';
  const leader = leaderUrl ? `${LEADER_HEADER}: ${leaderUrl}\r\n` : '';
  socket.end(
    `HTTP/1.1 ${e.status} ${reason}\r\nConnection: close\r\n${leader}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
