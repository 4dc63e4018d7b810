/**
 * The processes and links of a fault run. Everything here can be killed,
 * stopped, cut and restarted by the nemesis.
 *
 * - SQLite mode: one coordinator on a small tmpfs.
 * - PostgreSQL mode: several coordinators on one schema (pg-coordinators.ts),
 *   each behind its own database proxy.
 *
 * SQLite mode: N workers, each in its own network namespace (when we may
 * make them; partitions are then iptables rules) behind its own fault proxy;
 * one client behind its own proxy.
 *
 * PostgreSQL mode: N workers on loopback, each with its own fault proxy to
 * every coordinator (partitions are those proxies' blackholes); the client
 * with its own proxy to every coordinator. A standby names the leader by the
 * one URL the leader advertises, the same for everybody, so each coordinator
 * advertises a router (router.ts) that sends each connection through the
 * proxy of the process that opened it. Workers and the client are given the
 * routers' URLs too: the first connection and a redirect take the same path.
 * Network namespaces are not used there: inside one, 127.0.0.1 is the
 * namespace's own, and a leader's URL would have to mean a different
 * address in every namespace.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaultyProxy } from '../proxy.js';
import { TestNet } from '../netns.js';
import { CLI } from '../procs.js';
import { trackProcess, WATCH_PARENT } from '../cleanup.js';
import { freePort, isUp, killMember, waitForLine, type Member } from './members.js';
import { PgCoordinators, type PgOptions } from './pg-coordinators.js';
import { Router, type Route } from './router.js';

export { freePort, type Member } from './members.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
export const CLIENT_MAIN = fileURLToPath(new URL('./client-main.js', import.meta.url));

export interface ClusterOptions {
  dir: string;
  seed: number;
  workers: number;
  concurrency: number;
  /** Size of the tmpfs holding the database (SQLite mode). */
  diskBytes: number;
  /**
   * SQLite mode: use network namespaces (root); otherwise workers run on
   * loopback and partitions are proxy blackholes (always so in PostgreSQL mode).
   */
  netns: boolean;
  /** PostgreSQL mode; absent: one coordinator on SQLite. */
  postgres?: PgOptions;
  log: (line: string) => void;
}

export class Cluster {
  /** SQLite mode's coordinator. */
  readonly coordinator: Member = { name: 'coordinator', child: null, stopped: false };
  readonly pg: PgCoordinators | null;
  readonly workers: Member[] = [];
  /** Per worker: its proxies, one per coordinator. */
  readonly workerProxies: FaultyProxy[][] = [];
  /** Per worker: the coordinator URLs it is given. */
  readonly workerUrls: string[][] = [];
  /** The client's proxies, one per coordinator. */
  readonly clientProxies: FaultyProxy[] = [];
  /** Where the client connects: through its own fault proxies (via the routers in PostgreSQL mode). */
  clientUrls: string[] = [];
  /** PostgreSQL mode: the URL each coordinator advertises. */
  readonly routers: Router[] = [];
  /** The client process, once the harness started it (the routers send its connections its way). */
  clientPid: number | null = null;
  net: TestNet | null = null;
  /** SQLite mode's coordinator port. */
  port = 0;
  readonly disk: string;
  readonly historyDir: string;
  private mounted = false;

  constructor(readonly o: ClusterOptions) {
    this.disk = join(o.dir, 'disk');
    this.historyDir = join(o.dir, 'history');
    this.pg = o.postgres ? new PgCoordinators(o.postgres, o.dir, o.seed) : null;
  }

  /** SQLite mode: the coordinator, direct. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get db(): string {
    return join(this.disk, 'chaos.db');
  }

  /** Direct URLs of the coordinators (no proxy). */
  get coordinatorUrls(): string[] {
    return this.pg ? this.pg.ports.map((_, k) => this.pg!.direct(k)) : [this.url];
  }

  async start(): Promise<void> {
    mkdirSync(this.historyDir, { recursive: true });
    if (this.pg) await this.startPostgres();
    else await this.startSqlite();
  }

  /** Mounts the tmpfs, starts the coordinator, the client's proxy, the workers and theirs. */
  private async startSqlite(): Promise<void> {
    mkdirSync(this.disk, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${this.o.diskBytes}`, 'tmpfs', this.disk]);
    this.mounted = true;
    this.port = await freePort();
    await this.startCoordinator();
    const client = await this.startProxies([this.port], '127.0.0.1', this.o.seed * 100 + 99);
    this.clientProxies.push(...client.proxies);
    this.clientUrls = client.urls;
    if (this.o.netns) this.net = TestNet.create(`rg${this.o.seed % 10000}`);
    for (let i = 0; i < this.o.workers; i++) {
      let listenHost = '127.0.0.1';
      if (this.net) listenHost = (await this.net.addHost(`w${i}`)).gatewayIp;
      const own = await this.startProxies([this.port], listenHost, this.o.seed * 100 + i);
      this.workerProxies.push(own.proxies);
      this.workerUrls.push(own.urls);
      this.workers.push({ name: `worker-${i}`, child: null, stopped: false });
      await this.startWorker(i);
    }
  }

  /**
   * Proxies (the client's, each worker's, to every coordinator) and routers
   * first, since each coordinator advertises its router; then the
   * coordinators, all at once; once one leads, the workers.
   */
  private async startPostgres(): Promise<void> {
    const pg = this.pg!;
    const n = this.o.postgres!.coordinators;
    await pg.check();
    await pg.prepare();
    const client = await this.startProxies(pg.ports, '127.0.0.1', this.o.seed * 100 + 99);
    this.clientProxies.push(...client.proxies);
    const own: string[][] = [];
    for (let i = 0; i < this.o.workers; i++) {
      const p = await this.startProxies(pg.ports, '127.0.0.1', this.o.seed * 100 + i * n);
      this.workerProxies.push(p.proxies);
      own.push(p.urls);
      this.workers.push({ name: `worker-${i}`, child: null, stopped: false });
    }
    const urls: string[] = [];
    for (let k = 0; k < n; k++) {
      const routes: Route[] = this.workers.map((m, i) => {
        const to = new URL(own[i]![k]!);
        return { pid: () => m.child?.pid, host: to.hostname, port: Number(to.port) };
      });
      const to = new URL(client.urls[k]!);
      const mine = { host: to.hostname, port: Number(to.port) };
      routes.push({ pid: () => this.clientPid, ...mine });
      const router = new Router(() => routes, mine);
      urls.push(`http://127.0.0.1:${await router.start()}`);
      this.routers.push(router);
    }
    this.clientUrls = urls;
    await pg.startAll(urls);
    const leader = await pg.awaitLeader({ timeoutMs: 30_000 });
    if (!leader) throw new Error('no coordinator became leader within 30 s of the start');
    this.o.log(`chaos: coordinator-${leader.k} leads (epoch ${leader.epoch})`);
    for (let i = 0; i < this.o.workers; i++) {
      this.workerUrls.push(urls);
      await this.startWorker(i);
    }
  }

  /** One fault proxy to each port, listening on `host`. */
  private async startProxies(
    ports: number[],
    host: string,
    seed: number,
  ): Promise<{ proxies: FaultyProxy[]; urls: string[] }> {
    const proxies: FaultyProxy[] = [];
    const urls: string[] = [];
    for (const [k, port] of ports.entries()) {
      const proxy = new FaultyProxy({
        listenHost: host,
        targetHost: '127.0.0.1',
        targetPort: port,
        seed: seed + k,
      });
      const a = await proxy.start();
      proxies.push(proxy);
      urls.push(`http://${a.host}:${a.port}`);
    }
    return { proxies, urls };
  }

  async startCoordinator(): Promise<void> {
    const child = trackProcess(
      spawn(
        process.execPath,
        [
          ...WATCH_PARENT,
          CLI,
          'server',
          '--port',
          String(this.port),
          '--db',
          this.db,
          '--log-level',
          'error',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    this.coordinator.child = child;
    this.coordinator.stopped = false;
    child.stderr.on('data', (d: Buffer) => this.o.log(`coordinator: ${d.toString().trim()}`));
    await waitForLine(child, /listening on/, 30_000);
  }

  async startWorker(i: number): Promise<void> {
    const m = this.workers[i]!;
    const args = [
      ...WATCH_PARENT,
      WORKER_MAIN,
      this.workerUrls[i]!.join(','),
      join(this.historyDir, `${m.name}.jsonl`),
      m.name,
      String(this.o.concurrency),
    ];
    const child = trackProcess(
      this.net
        ? this.net.spawnIn(`w${i}`, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    m.child = child;
    m.stopped = false;
    await waitForLine(child, /joined as|resumed as/, 30_000);
  }

  /** SIGKILL and wait for the exit. */
  kill(m: Member): Promise<number | undefined> {
    return killMember(m);
  }

  /** Partition one worker: iptables in its namespace, or its proxies' blackholes without namespaces. */
  async partition(i: number, dir: 'both' | 'in' | 'out'): Promise<void> {
    if (this.net) await this.net.partition(`w${i}`, dir);
    else for (const p of this.workerProxies[i]!) p.blackhole(true);
  }

  async healPartition(i: number): Promise<void> {
    if (this.net) await this.net.heal(`w${i}`);
    else for (const p of this.workerProxies[i]!) p.blackhole(false);
  }

  /** The proxies of a link: a worker's (by index) or the client's (index -1). */
  linkProxies(i: number): FaultyProxy[] {
    return i < 0 ? this.clientProxies : this.workerProxies[i]!;
  }

  /**
   * Connections through each worker's proxies and the client's; in
   * PostgreSQL mode also those the routers could not place (their process
   * was gone before the router saw them).
   */
  linkStats(): { workers: number[]; client: number; routed: number; unrouted: number } {
    const sum = (ps: FaultyProxy[]): number => ps.reduce((n, p) => n + p.stats.connections, 0);
    return {
      workers: this.workerProxies.map(sum),
      client: sum(this.clientProxies),
      routed: this.routers.reduce((n, r) => n + r.routed, 0),
      unrouted: this.routers.reduce((n, r) => n + r.unrouted, 0),
    };
  }

  /** Fills the tmpfs under the database, leaving `leaveBytes`. Returns the filler's size. */
  fillDisk(leaveBytes = 0): number {
    const free = Number(statfsSync(this.disk).bavail) * Number(statfsSync(this.disk).bsize);
    const size = Math.max(0, free - leaveBytes);
    const fd = openSync(join(this.disk, 'filler'), 'w');
    const chunk = Buffer.alloc(1 << 20);
    let left = size;
    try {
      while (left > 0) {
        const n = writeSync(fd, chunk, 0, Math.min(chunk.length, left));
        left -= n;
      }
    } catch {
      // ENOSPC: full, which is the point
    } finally {
      closeSync(fd);
    }
    return size - left;
  }

  freeDisk(): void {
    if (this.mounted) rmSync(join(this.disk, 'filler'), { force: true });
  }

  /** Heals every fault and brings every process back; in PostgreSQL mode, waits for a leader. */
  async healAll(): Promise<void> {
    this.freeDisk();
    this.pg?.healLinks();
    for (const p of [...this.workerProxies.flat(), ...this.clientProxies]) p.heal();
    for (let i = 0; i < this.workers.length; i++) {
      await this.healPartition(i);
      this.workers[i]!.child?.kill('SIGCONT');
      if (!isUp(this.workers[i]!)) await this.startWorker(i);
    }
    if (this.pg) {
      await this.pg.bringBack();
      const leader = await this.pg.awaitLeader({ timeoutMs: 60_000 });
      if (!leader) throw new Error('no coordinator leads 60 s after every fault was healed');
      return;
    }
    this.coordinator.child?.kill('SIGCONT');
    if (!isUp(this.coordinator)) await this.startCoordinator();
  }

  /** A coordinator that serves the API now (the leader in PostgreSQL mode), direct. */
  async servingUrl(): Promise<string> {
    if (!this.pg) return this.url;
    const leader = await this.pg.awaitLeader({ timeoutMs: 60_000 });
    if (!leader) throw new Error('no coordinator leads: the final state cannot be read');
    return this.pg.direct(leader.k);
  }

  /** Kills everything, removes the namespaces, the tmpfs, the schema; throws the first failure at the end. */
  async stop(): Promise<void> {
    const failures: Error[] = [];
    const keep = (e: unknown): void => {
      failures.push(e instanceof Error ? e : new Error(String(e)));
    };
    for (const m of [...this.workers, this.coordinator]) await killMember(m).catch(keep);
    await this.pg?.stop().catch(keep);
    for (const r of this.routers) await r.stop();
    for (const p of [...this.workerProxies.flat(), ...this.clientProxies]) await p.stop();
    await this.net?.destroy().catch(keep);
    if (this.mounted) {
      try {
        execFileSync('umount', [this.disk]);
      } catch {
        execFileSync('umount', ['-l', this.disk]);
      }
      this.mounted = false;
    }
    if (failures[0]) throw failures[0];
  }
}

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}
