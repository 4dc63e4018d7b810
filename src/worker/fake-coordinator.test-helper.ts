/**
 * A protocol-level fake coordinator for the worker's tests: a WebSocketServer
 * on 127.0.0.1 that records every frame and answers the way the test tells it.
 * Real end-to-end tests run the real coordinator.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TestContext } from 'node:test';
import { WORKER_PATH } from '../protocol/worker.js';
import type { Handler, WorkerOptions } from './options.js';
import { Worker } from './worker.js';

/** What the worker sent; loosely typed so tests can read any field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any> & { t: string };

export interface FakeConn {
  ws: WebSocket;
  headers: IncomingHttpHeaders;
  path: string;
  frames: Msg[][];
  closed: boolean;
}

export interface Received {
  conn: FakeConn;
  msg: Msg;
}

export interface FakeOptions {
  /** Answer hello with welcome. Default true. */
  autoWelcome?: boolean;
  /** Resume a session whose hello carries the last workerId and token. Default true. */
  resume?: boolean;
  /** Answer beat with beat. Default true. */
  autoBeat?: boolean;
  /** Ack result, fail and release as committed. Default true. */
  autoAck?: boolean;
  /** Answer checkpoint with saved ok. Default true. */
  autoSave?: boolean;
  heartbeatMs?: number;
  deadAfterMs?: number;
  maxResultBytes?: number;
  maxDepth?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class FakeCoordinator {
  readonly conns: FakeConn[] = [];
  readonly received: Received[] = [];
  readonly o: Required<FakeOptions>;
  /** Sessions handed out so far; the last one is the one a resume may take back. */
  sessions = 0;

  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
    o: FakeOptions,
  ) {
    this.o = {
      autoWelcome: true,
      resume: true,
      autoBeat: true,
      autoAck: true,
      autoSave: true,
      heartbeatMs: 50,
      deadAfterMs: 5000,
      maxResultBytes: 64 * 1024,
      maxDepth: 64,
      ...o,
    };
    wss.on('connection', (ws, req) => this.onConnection(ws, req.headers, req.url ?? ''));
  }

  static async start(o: FakeOptions = {}): Promise<FakeCoordinator> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    const port = (wss.address() as AddressInfo).port;
    return new FakeCoordinator(wss, `http://127.0.0.1:${port}`, o);
  }

  get last(): FakeConn {
    const c = this.conns[this.conns.length - 1];
    if (c === undefined) throw new Error('no connection yet');
    return c;
  }

  /** Messages of type `t` (on `conn`, or on any connection). */
  all(t: string, conn?: FakeConn): Msg[] {
    return this.received
      .filter((r) => r.msg.t === t && (!conn || r.conn === conn))
      .map((r) => r.msg);
  }

  send(msgs: object[], conn: FakeConn = this.last): void {
    conn.ws.send(JSON.stringify(msgs));
  }

  sendRaw(text: string, conn: FakeConn = this.last): void {
    conn.ws.send(text);
  }

  /** Waits until some received message matches; fails after a generous timeout. */
  async waitFor(pred: (m: Msg, c: FakeConn) => boolean, what = 'a message'): Promise<Msg> {
    return waitUntil(() => this.received.find((r) => pred(r.msg, r.conn))?.msg, what);
  }

  async waitForConn(n: number): Promise<FakeConn> {
    return waitUntil(() => this.conns[n - 1], `connection #${n}`);
  }

  /** Drops every live connection, as a crash or a network cut would. */
  dropAll(): void {
    for (const c of this.conns) if (!c.closed) c.ws.terminate();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private onConnection(ws: WebSocket, headers: IncomingHttpHeaders, path: string): void {
    const conn: FakeConn = { ws, headers, path, frames: [], closed: false };
    this.conns.push(conn);
    ws.on('close', () => (conn.closed = true));
    ws.on('message', (data) => {
      const frame = JSON.parse((data as Buffer).toString('utf8')) as Msg[];
      conn.frames.push(frame);
      for (const msg of frame) {
        this.received.push({ conn, msg });
        this.autoAnswer(conn, msg);
      }
    });
  }

  private autoAnswer(conn: FakeConn, m: Msg): void {
    const o = this.o;
    if (m.t === 'hello' && o.autoWelcome) {
      const resumed = o.resume && m.resume?.workerId === `w${this.sessions}`;
      if (!resumed) this.sessions += 1;
      this.send([this.welcome(resumed)], conn);
    } else if (m.t === 'beat' && o.autoBeat) {
      this.send([{ t: 'beat' }], conn);
    } else if (['result', 'fail', 'release'].includes(m.t) && o.autoAck) {
      this.send([{ t: 'ack', taskId: m.taskId, attempt: m.attempt, status: 'committed' }], conn);
    } else if (m.t === 'checkpoint' && o.autoSave) {
      this.send([{ t: 'saved', taskId: m.taskId, attempt: m.attempt, seq: m.seq, ok: true }], conn);
    }
  }

  welcome(resumed: boolean): Msg {
    return {
      t: 'welcome',
      workerId: `w${this.sessions}`,
      token: `token-${this.sessions}`,
      resumed,
      heartbeatMs: this.o.heartbeatMs,
      deadAfterMs: this.o.deadAfterMs,
      closeGraceMs: 500,
      maxResultBytes: this.o.maxResultBytes,
      maxDepth: this.o.maxDepth,
    };
  }
}

export function run(taskId: number, handler: string, input: unknown, extra: object = {}): Msg {
  return {
    t: 'run',
    taskId,
    attempt: 1,
    groupId: 'g1',
    index: taskId - 1,
    handler,
    input,
    timeoutMs: 0,
    ...extra,
  };
}

/** Polls `get` until it returns something; throws naming `what` after 5 s. */
export async function waitUntil<T>(get: () => T | undefined | false, what: string): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * A fake coordinator and a started worker of `handlers` on it (silent
 * logger), both closed after the test.
 */
export async function workerOnFake(
  t: TestContext,
  handlers: Record<string, Handler>,
  fakeOptions: FakeOptions = {},
  workerOptions: Partial<WorkerOptions> = {},
): Promise<{ fake: FakeCoordinator; worker: Worker }> {
  const fake = await FakeCoordinator.start(fakeOptions);
  const worker = new Worker({ url: fake.url, handlers, logger: () => {}, ...workerOptions });
  t.after(async () => {
    await worker.close();
    await fake.close();
  });
  await worker.start();
  return { fake, worker };
}

export { sleep };
export { WORKER_PATH };
