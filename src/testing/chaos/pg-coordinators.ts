/**
 * PostgreSQL mode of a fault run: several coordinators (`regroup server
 * --postgres`), each its own process, on one schema. Each reaches the
 * database through its own fault proxy, so one coordinator can be cut off
 * from it while the others are not. The leader is found by asking every
 * coordinator's /healthz.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { FaultyProxy } from '../proxy.js';
import { CLI } from '../procs.js';
import { trackProcess, WATCH_PARENT } from '../cleanup.js';
import { freePort, isUp, killMember, waitForLine, type Member } from './members.js';

export interface PgOptions {
  /** The database (the harness connects to it to check it and to drop the schema). */
  url: string;
  /** A fresh schema for this run; dropped at the end. */
  schema: string;
  coordinators: number;
  /** The leader's lease (`--lease-ms`). */
  leaseMs: number;
}

export interface Health {
  ok: boolean;
  role: 'leader' | 'standby';
  epoch: number | null;
  leader: string | null;
}

export interface Leader {
  /** Index of the coordinator. */
  k: number;
  epoch: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The schema of a run by the harness process `pid`: lowercase, so it needs no quoting. */
export function chaosSchema(seed: number, pid = process.pid): string {
  return `regroup_chaos_${pid}_${seed}`;
}

async function sql(url: string, text: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

export class PgCoordinators {
  readonly members: Member[] = [];
  /** Where each coordinator listens (direct, no proxy). */
  readonly ports: number[] = [];
  /** Each coordinator's link to the database. */
  readonly dbProxies: FaultyProxy[] = [];
  private readonly dbUrls: string[] = [];
  private readonly logs: WriteStream[] = [];
  private advertised: string[] = [];

  constructor(
    readonly o: PgOptions,
    private readonly dir: string,
    private readonly seed: number,
  ) {}

  /** Fails with a clear message when the database cannot be reached. */
  async check(): Promise<void> {
    try {
      await sql(this.o.url, 'SELECT 1');
    } catch (e) {
      throw new Error(
        `PostgreSQL is not reachable at ${this.o.url}: ${(e as Error).message} (set REGROUP_PG_URL)`,
        { cause: e },
      );
    }
    await sql(this.o.url, `DROP SCHEMA IF EXISTS ${this.o.schema} CASCADE`);
  }

  /** Picks ports and starts the database proxies; coordinators start later (`startAll`). */
  async prepare(): Promise<void> {
    const db = new URL(this.o.url);
    for (let k = 0; k < this.o.coordinators; k++) {
      this.ports.push(await freePort());
      const proxy = new FaultyProxy({
        targetHost: db.hostname,
        targetPort: Number(db.port || 5432),
        seed: this.seed * 100 + 50 + k,
      });
      const a = await proxy.start();
      this.dbProxies.push(proxy);
      const viaProxy = new URL(this.o.url);
      viaProxy.hostname = a.host;
      viaProxy.port = String(a.port);
      this.dbUrls.push(viaProxy.toString());
      this.members.push({ name: `coordinator-${k}`, child: null, stopped: false });
      this.logs.push(createWriteStream(join(this.dir, `coordinator-${k}.log`), { flags: 'a' }));
    }
  }

  /** `advertised[k]`: the URL coordinator k gives as the leader's (clients and workers reach it there). */
  async startAll(advertised: string[]): Promise<void> {
    this.advertised = advertised;
    await Promise.all(this.members.map((_, k) => this.start(k)));
  }

  /**
   * Unique to the run (the schema names it). A new leader ends the old one's
   * sessions by application_name; before it named the schema, two runs at
   * once with the same ids ended each other's coordinators.
   */
  coordinatorId(k: number): string {
    return `${this.o.schema}_c${k}`;
  }

  direct(k: number): string {
    return `http://127.0.0.1:${this.ports[k]}`;
  }

  /** Starts coordinator k on its port; resolves once it listens (it campaigns from then on). */
  async start(k: number): Promise<void> {
    const m = this.members[k]!;
    const args = [
      CLI,
      'server',
      '--host',
      '127.0.0.1',
      '--port',
      String(this.ports[k]),
      '--postgres',
      this.dbUrls[k]!,
      '--pg-schema',
      this.o.schema,
      '--coordinator-id',
      this.coordinatorId(k),
      '--advertise-url',
      this.advertised[k]!,
      '--lease-ms',
      String(this.o.leaseMs),
      '--log-level',
      'warn',
    ];
    const child = trackProcess(
      spawn(process.execPath, [...WATCH_PARENT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    m.child = child;
    m.stopped = false;
    const log = this.logs[k]!;
    const stamp = (d: Buffer): void => {
      for (const line of d.toString().split('\n'))
        if (line !== '') log.write(`${new Date().toISOString()} [${child.pid}] ${line}\n`);
    };
    child.stdout.on('data', stamp);
    child.stderr.on('data', stamp);
    await waitForLine(child, /listening on/, 30_000);
  }

  kill(k: number): Promise<number | undefined> {
    return killMember(this.members[k]!);
  }

  async health(k: number, timeoutMs = 500): Promise<Health | null> {
    if (!isUp(this.members[k]!)) return null;
    try {
      const r = await fetch(`${this.direct(k)}/healthz`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
      return r.status === 200 ? ((await r.json()) as Health) : null;
    } catch {
      return null;
    }
  }

  /** The coordinator that says it leads, with the newest epoch (a paused old leader may still say so). */
  async leader(): Promise<Leader | null> {
    const hs = await Promise.all(this.members.map((_, k) => this.health(k)));
    let best: Leader | null = null;
    for (const [k, h] of hs.entries()) {
      if (h?.role === 'leader' && h.epoch !== null && (best === null || h.epoch > best.epoch))
        best = { k, epoch: h.epoch };
    }
    return best;
  }

  /** Coordinators that are up and say they stand by. */
  async standbys(): Promise<number[]> {
    const hs = await Promise.all(this.members.map((_, k) => this.health(k)));
    return hs.flatMap((h, k) => (h?.role === 'standby' ? [k] : []));
  }

  /** Whether coordinator k serves the API (a read answered 200). */
  private async serves(k: number): Promise<boolean> {
    try {
      const r = await fetch(`${this.direct(k)}/v1/groups?limit=1`, {
        signal: AbortSignal.timeout(1000),
      });
      await r.arrayBuffer();
      return r.status === 200;
    } catch {
      return false;
    }
  }

  /**
   * The first coordinator to say it leads with an epoch above `epoch`, without
   * waiting for the slow ones (a stopped coordinator answers nothing at all).
   */
  private firstNewer(epoch: number): Promise<Leader | null> {
    return new Promise((resolve) => {
      let pending = this.members.length;
      for (const k of this.members.keys()) {
        void this.health(k).then((h) => {
          if (h?.role === 'leader' && h.epoch !== null && h.epoch > epoch)
            resolve({ k, epoch: h.epoch });
          if (--pending === 0) resolve(null);
        });
      }
    });
  }

  /**
   * Polls until a leader answers /healthz as leader and serves a read. With
   * `newerThan`, one with a newer epoch, as soon as it answers; without, the
   * newest of all who say they lead. Resolves with it and the time it was
   * seen, or null after `timeoutMs`.
   */
  async awaitLeader(o: {
    newerThan?: number;
    timeoutMs: number;
  }): Promise<(Leader & { at: number }) | null> {
    const deadline = Date.now() + o.timeoutMs;
    while (Date.now() < deadline) {
      const l =
        o.newerThan === undefined ? await this.leader() : await this.firstNewer(o.newerThan);
      if (l && (await this.serves(l.k))) return { ...l, at: Date.now() };
      await sleep(50);
    }
    return null;
  }

  healLinks(): void {
    for (const p of this.dbProxies) p.heal();
  }

  /** SIGCONT every coordinator, restart those that are down. */
  async bringBack(): Promise<void> {
    for (let k = 0; k < this.members.length; k++) {
      const m = this.members[k]!;
      m.child?.kill('SIGCONT');
      if (!isUp(m)) await this.start(k);
    }
  }

  async stop(): Promise<void> {
    for (const m of this.members) await killMember(m).catch(() => undefined);
    for (const p of this.dbProxies) await p.stop();
    for (const l of this.logs) l.end();
    await sql(this.o.url, `DROP SCHEMA IF EXISTS ${this.o.schema} CASCADE`);
  }
}
