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
import { parseJson } from '../protocol/validate.js';
import { WORKER_PATH, workerFrame, type CoordinatorMessage } from '../protocol/worker.js';
import { requestUrl } from './http-util.js';
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

export type CoordinatorLifecycle = 'starting' | 'running' | 'stopping' | 'stopped';

export class Coordinator {
  readonly options: ResolvedCoordinatorOptions;
  readonly sessions = new Sessions();
  readonly engine: Engine;
  readonly gateway: WorkerGateway;
  /** Typed events for embedders: committed, dispatched, workerDead, groupChanged. */
  readonly events = new Emitter<CoordinatorEvents>();
  private readonly waiters = new Waiters();
  private readonly api: HttpApi;
  private readonly auth: Auth;
  private server: Server | null = null;
  private wss: WebSocketServer | null = null;
  state: CoordinatorLifecycle = 'stopped';
  url = '';

  constructor(options: CoordinatorOptions) {
    this.options = resolveCoordinatorOptions(options);
    const o = this.options;
    this.engine = new Engine(
      o,
      o.store,
      this.sessions,
      {
        afterTick: (r) => {
          this.gateway.afterTick(r.claimed, r.revoked);
          this.waiters.notify(r.changedGroups);
          for (const g of r.changedGroups) {
            this.events.emit('groupChanged', g);
            if (g.state !== 'done') continue;
            const data = {
              total: g.total,
              succeeded: g.succeeded,
              failed: g.failed,
              canceled: g.canceled,
            };
            this.engine.event({ type: 'group.done', groupId: g.id, data });
          }
        },
      },
      this.events,
    );
    this.gateway = new WorkerGateway(o, this.engine, this.sessions, this.events);
    this.auth = new Auth({ client: o.clientToken, worker: o.workerToken }, o.now);
    this.api = new HttpApi(o, o.store, this.engine, this.sessions, this.waiters, this.auth);
  }

  /** Opens the store, restores leases and worker sessions, then listens. Resolves with the URL. */
  async start(): Promise<string> {
    const o = this.options;
    this.state = 'starting';
    await o.store.open();
    await this.recover();
    const handler = (req: IncomingMessage, res: import('node:http').ServerResponse): void =>
      void this.api.handle(req, res);
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
    this.gateway.start();
    this.state = 'running';
    o.logger('info', 'coordinator listening', { url: this.url });
    return this.url;
  }

  /**
   * After a restart the leases are still in the store. Each worker that held
   * one gets deadAfterMs to resume its session before it is declared dead.
   */
  private async recover(): Promise<void> {
    const o = this.options;
    const { leases, workers } = await o.store.recover();
    const now = o.now();
    this.engine.restore(leases);
    for (const w of workers) {
      if (w.state === 'dead' || w.state === 'left') continue;
      const s = new Session({ ...w, now, recorded: w.state === 'draining' ? 'draining' : 'alive' });
      s.draining = w.state === 'draining';
      this.sessions.add(s);
    }
    const orphans: number[] = [];
    for (const l of leases) {
      const s = this.sessions.get(l.workerId);
      if (s) s.leases.add(l.taskId);
      else {
        orphans.push(l.taskId);
        this.engine.requeue({ taskId: l.taskId, attempt: l.attempt, workerId: l.workerId }, false);
      }
    }
    this.engine.event({
      type: 'coordinator.started',
      data: { leases: leases.length, workers: this.sessions.size, orphans: orphans.length },
    });
    if (leases.length > 0 || workers.length > 0) {
      o.logger('info', 'recovered state', {
        leases: leases.length,
        workers: this.sessions.size,
        orphans: orphans.length,
      });
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
    } catch (e) {
      refuseUpgrade(
        socket,
        e instanceof RegroupError ? e : new RegroupError('bad_request', String(e)),
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => this.onWorkerSocket(ws));
  }

  private onWorkerSocket(ws: WebSocket): void {
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
        if (isBinary) throw new RegroupError('protocol_error', 'frames are JSON text, not binary');
        const text = Array.isArray(data)
          ? Buffer.concat(data).toString('utf8')
          : Buffer.from(data as ArrayBuffer).toString('utf8');
        frame = workerFrame.parse(parseJson(text, 'frame'), 'frame (a JSON array of messages)');
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
      this.gateway.onFrame(conn, frame);
    });
    ws.on('close', () => this.gateway.onClose(conn));
    ws.on('error', (e) => this.options.logger('warn', 'worker socket error', { err: e.message }));
  }

  /** Stops accepting, commits what is queued, closes sockets and the store. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    this.gateway.stop();
    this.waiters.wakeAll();
    await this.engine.stop();
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

function refuseUpgrade(socket: Duplex, e: RegroupError): void {
  const body = JSON.stringify(e.toWire());
  const reason = e.status === 401 ? 'Unauthorized' : e.status === 404 ? 'Not Found' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${e.status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
