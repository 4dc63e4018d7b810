/**
 * The fuzz harness: one real Coordinator on a real SQLite file in this
 * process, a keep-alive HTTP client that sends exactly the bytes it is given,
 * a raw WebSocket peer, an honest worker that holds the lease of a reference
 * task for the whole run, state snapshots and the process-level invariants
 * (no crash, no unhandled rejection, no prototype pollution).
 */
import http from 'node:http';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { Coordinator } from '../src/coordinator/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from '../src/testing/procs.js';
import type { CoordinatorMessage } from '../src/protocol/worker.js';

/** Small limits keep big-value cases fast; the fuzz goes both within and beyond them. */
export const LIMITS = {
  maxBodyBytes: 32 * 1024,
  maxTasksPerRequest: 20,
  maxInputBytes: 4096,
  maxResultBytes: 4096,
  maxMessageBytes: 128 * 1024,
} as const;

/** Long enough that no session dies or turns suspect during a run unless a case wants it. */
export const LIVENESS = { heartbeatMs: 1000, deadAfterMs: 30_000, closeGraceMs: 5000 } as const;

export interface RawRequest {
  method: string;
  path: string;
  /** undefined: no Content-Type header at all. */
  contentType?: string | undefined;
  body?: string | Buffer | undefined;
  /** Send the body with Transfer-Encoding: chunked (in two pieces) instead of Content-Length. */
  chunked?: boolean;
  /** Further headers, sent as given (`host` replaces the one node would write). */
  headers?: Record<string, string>;
}

export interface Reply {
  status: number;
  contentType: string | undefined;
  text: string;
}

export const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The process-level invariants: anything recorded here fails the current case. */
export class ProcessWatch {
  readonly problems: string[] = [];
  private readonly protoNames = new Map<object, string[]>();
  private readonly onRejection = (e: unknown): void => {
    this.problems.push(`unhandledRejection: ${String((e as Error)?.stack ?? e)}`);
  };
  private readonly onException = (e: unknown): void => {
    this.problems.push(`uncaughtException: ${String((e as Error)?.stack ?? e)}`);
  };

  install(): void {
    process.on('unhandledRejection', this.onRejection);
    process.on('uncaughtException', this.onException);
    for (const p of [Object.prototype, Array.prototype, Function.prototype, String.prototype])
      this.protoNames.set(p, Object.getOwnPropertyNames(p).sort());
  }

  uninstall(): void {
    process.off('unhandledRejection', this.onRejection);
    process.off('uncaughtException', this.onException);
  }

  /** Throws when the process saw an unhandled error or a prototype was changed. */
  check(what: string): void {
    assert.deepEqual(this.problems, [], `${what}: the process saw an unhandled error`);
    const probe = {} as Record<string, unknown>;
    for (const k of ['polluted', 'admin', 'isAdmin', 'x', 'evil'])
      assert.equal(probe[k], undefined, `${what}: Object.prototype.${k} was polluted`);
    assert.equal(([] as unknown as Record<string, unknown>)['polluted'], undefined);
    for (const [p, names] of this.protoNames)
      assert.deepEqual(
        Object.getOwnPropertyNames(p).sort(),
        names,
        `${what}: a prototype gained or lost a property`,
      );
  }
}

/** A raw worker-protocol peer: sends exactly what it is told, records every message and the close. */
export class Peer {
  readonly ws: WebSocket;
  readonly inbox: CoordinatorMessage[] = [];
  /** Frames that were not a JSON array of objects with `t` (the coordinator must never send one). */
  readonly malformed: string[] = [];
  closeCode: number | null = null;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(base: string) {
    this.ws = new WebSocket(base.replace(/^http/, 'ws') + '/v1/worker');
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code: number) => {
        this.closeCode = code;
        resolve();
      }),
    );
    this.ws.on('error', () => {});
    this.ws.on('message', (d: Buffer, isBinary: boolean) => {
      const text = d.toString('utf8');
      let frame: unknown;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = null;
      }
      if (
        isBinary ||
        !Array.isArray(frame) ||
        !frame.every((m) => typeof m === 'object' && m !== null && typeof m.t === 'string')
      ) {
        this.malformed.push(text.slice(0, 200));
        return;
      }
      this.inbox.push(...(frame as CoordinatorMessage[]));
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(messages: unknown[]): void {
    this.ws.send(JSON.stringify(messages));
  }

  /** Resolves once the coordinator has read everything sent before (ping/pong is in order), or on close. */
  async roundTrip(timeoutMs = 10_000): Promise<void> {
    if (!this.open) return;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.ws.off('pong', done);
        this.ws.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.ws.off('pong', done);
        this.ws.off('close', done);
        reject(new Error(`no pong within ${timeoutMs} ms: the coordinator stopped answering`));
      }, timeoutMs);
      this.ws.on('pong', done);
      this.ws.on('close', done);
      this.ws.ping();
    });
  }

  /** Takes every message received so far. */
  drain(): CoordinatorMessage[] {
    return this.inbox.splice(0);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.terminate();
    await this.closed;
  }
}

/** What must not change when a request or message is refused. */
export interface Snapshot {
  text: string;
  dataVersion: number;
}

export class Harness {
  readonly watch = new ProcessWatch();
  coordinator!: Coordinator;
  url = '';
  port = 0;
  honest!: Peer;
  honestWorkerId = '';
  /** The reference group: one task, leased to the honest worker for the whole run. */
  ref = { groupId: '', taskId: 0, attempt: 0 };
  private readonly tmp = tempDir('regroup-fuzz-');
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private reader!: Database.Database;
  private beatTimer: NodeJS.Timeout | null = null;

  async start(): Promise<void> {
    this.watch.install();
    const path = join(this.tmp.dir, 'fuzz.db');
    this.coordinator = new Coordinator({
      store: new SqliteStore({ path, synchronous: 'NORMAL' }),
      port: 0,
      limits: { ...LIMITS },
      ...LIVENESS,
      sweepMs: 5,
    });
    this.url = await this.coordinator.start();
    this.port = Number(new URL(this.url).port);
    // A second connection only reads PRAGMA data_version: it changes exactly when the coordinator commits a write.
    this.reader = new Database(path, { readonly: true });
    this.honest = new Peer(this.url);
    await this.honest.opened;
    this.honest.send([
      { t: 'hello', protocol: 1, name: 'honest', handlers: ['honest'], slots: 1, labels: [] },
    ]);
    const welcome = await this.take(this.honest, 'welcome');
    this.honestWorkerId = welcome.workerId;
    this.beatTimer = setInterval(() => this.honest.send([{ t: 'beat' }]), 250);
    const g = await this.json('POST', '/v1/groups', { handler: 'honest', inputs: [{ ref: 1 }] });
    assert.equal(g.status, 201);
    const run = await this.take(this.honest, 'run');
    this.ref = { groupId: g.body['id'] as string, taskId: run.taskId, attempt: run.attempt };
  }

  async stop(): Promise<void> {
    if (this.beatTimer) clearInterval(this.beatTimer);
    await this.honest?.close();
    await this.coordinator?.stop();
    this.reader?.close();
    this.agent.destroy();
    this.watch.uninstall();
    this.tmp.cleanup();
  }

  /** Waits for a message of type t on a peer (removing it from the inbox). */
  async take<T extends CoordinatorMessage['t']>(
    p: Peer,
    t: T,
    timeoutMs = 10_000,
  ): Promise<Extract<CoordinatorMessage, { t: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = p.inbox.findIndex((m) => m.t === t);
      if (i >= 0) return p.inbox.splice(i, 1)[0] as Extract<CoordinatorMessage, { t: T }>;
      if (Date.now() > deadline) throw new Error(`no ${t} message within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Sends one request exactly as described, over the keep-alive agent. */
  request(r: RawRequest): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const headers: Record<string, string> = { ...r.headers };
      if (r.contentType !== undefined) headers['content-type'] = r.contentType;
      if (r.chunked) headers['transfer-encoding'] = 'chunked';
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.port,
          method: r.method,
          path: r.path,
          headers,
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: res.headers['content-type'],
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.setTimeout(15_000, () => req.destroy(new Error('no answer within 15 s')));
      req.on('error', reject);
      if (r.body === undefined) req.end();
      else if (r.chunked) {
        const b = Buffer.from(r.body);
        const half = Math.floor(b.length / 2);
        if (half > 0) req.write(b.subarray(0, half));
        if (b.length - half > 0) req.write(b.subarray(half));
        req.end();
      } else req.end(r.body);
    });
  }

  async json(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await this.request({
      method,
      path,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), contentType: 'application/json' }),
    });
    return { status: r.status, body: JSON.parse(r.text) as Record<string, unknown> };
  }

  dataVersion(): number {
    return this.reader.pragma('data_version', { simple: true }) as number;
  }

  /** Resolves once the engine has nothing queued and nothing in flight (twice, across a turn). */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await this.coordinator.engine.settle();
      await immediate();
    }
  }

  /**
   * Waits until the liveness sweep has written every pending health change
   * (a closed connection makes its session suspect, a resume makes it alive),
   * so that no background write lands during the next case.
   */
  async quiesce(): Promise<void> {
    const c = this.coordinator;
    let waited = false;
    for (let i = 0; i < 100; i++) {
      const now = c.options.now();
      const behind = [...c.sessions.all()].some((s) => {
        const health = s.health(now, c.options);
        return health !== s.recorded && (health === 'suspect' || s.recorded === 'suspect');
      });
      if (!behind) break;
      waited = true;
      await new Promise((r) => setTimeout(r, 2));
    }
    // Events wait up to 25 ms for a tick to ride with: write them now, so
    // that none lands after the snapshot that the next step is compared with.
    if (c.engine.flushEvents() || waited) await this.settle();
  }

  /** The state a refused request must not change: groups, the reference tasks, the workers, and any write. */
  async snapshot(): Promise<Snapshot> {
    const [groups, tasks, workers] = await Promise.all([
      this.json('GET', '/v1/groups?limit=5'),
      this.json('GET', `/v1/groups/${this.ref.groupId}/tasks`),
      this.json('GET', '/v1/workers'),
    ]);
    assert.equal(groups.status, 200);
    assert.equal(tasks.status, 200);
    assert.equal(workers.status, 200);
    const ws = (workers.body['workers'] as Record<string, unknown>[]).map((w) => ({
      ...w,
      lastSeenAgoMs: 0,
    }));
    this.checkReference(tasks.body['tasks'] as Record<string, unknown>[]);
    return {
      text: JSON.stringify({ groups: groups.body, tasks: tasks.body, workers: ws }),
      dataVersion: this.dataVersion(),
    };
  }

  /** The reference task stays running under the honest worker, attempt unchanged, no value. */
  checkReference(tasks: Record<string, unknown>[]): void {
    assert.equal(tasks.length, 1, 'the reference group has one task');
    const t = tasks[0]!;
    assert.equal(t['state'], 'running', 'the reference task is still running');
    assert.equal(t['attempt'], this.ref.attempt, 'the reference attempt did not change');
    assert.equal(t['workerId'], this.honestWorkerId, 'the honest worker still holds the lease');
    assert.equal(t['value'], undefined, 'no value was committed for the reference task');
  }

  private checks = 0;

  /** The process invariants after every case; /healthz every tenth case (the snapshot's reads prove the rest). */
  async healthy(what: string): Promise<void> {
    this.watch.check(what);
    if (this.checks++ % 10 !== 0) return;
    const h = await this.request({ method: 'GET', path: '/healthz' });
    assert.equal(h.status, 200, `${what}: /healthz answers`);
    const body = JSON.parse(h.text) as { ok: unknown; role: unknown };
    assert.equal(body.ok, true);
    assert.equal(body.role, 'leader');
    this.watch.check(what);
  }
}
