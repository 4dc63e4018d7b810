/**
 * The processes and links of a fault run: one coordinator (SQLite on a small
 * tmpfs), N workers (each in its own network namespace, behind its own fault
 * proxy), one client (behind a proxy). Everything here can be killed,
 * stopped, cut and restarted by the nemesis.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaultyProxy } from '../proxy.js';
import { TestNet } from '../netns.js';
import { CLI } from '../procs.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
export const CLIENT_MAIN = fileURLToPath(new URL('./client-main.js', import.meta.url));

export interface Member {
  name: string;
  child: ChildProcess | null;
  /** Exit is expected (we killed it). */
  stopped: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () =>
        reject(
          new Error(`no line matching ${re} within ${timeoutMs} ms; output: ${buf.slice(-2000)}`),
        ),
      timeoutMs,
    );
    const on = (d: Buffer): void => {
      buf += d.toString();
      if (re.test(buf)) {
        clearTimeout(timer);
        child.stdout?.off('data', on);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', (d: Buffer) => (buf += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${re}; output: ${buf.slice(-2000)}`));
    });
  });
}

export interface ClusterOptions {
  dir: string;
  seed: number;
  workers: number;
  concurrency: number;
  /** Size of the tmpfs holding the database. */
  diskBytes: number;
  /** Use network namespaces (root); otherwise workers run on loopback and partitions are proxy blackholes. */
  netns: boolean;
  log: (line: string) => void;
}

export class Cluster {
  readonly coordinator: Member = { name: 'coordinator', child: null, stopped: false };
  readonly workers: Member[] = [];
  readonly workerProxies: FaultyProxy[] = [];
  readonly workerUrls: string[] = [];
  clientProxy: FaultyProxy | null = null;
  /** Where the client connects: through its own fault proxy. */
  clientUrl = '';
  net: TestNet | null = null;
  port = 0;
  readonly disk: string;
  readonly historyDir: string;
  private mounted = false;

  constructor(readonly o: ClusterOptions) {
    this.disk = join(o.dir, 'disk');
    this.historyDir = join(o.dir, 'history');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get db(): string {
    return join(this.disk, 'chaos.db');
  }

  async start(): Promise<void> {
    mkdirSync(this.disk, { recursive: true });
    mkdirSync(this.historyDir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${this.o.diskBytes}`, 'tmpfs', this.disk]);
    this.mounted = true;
    this.port = await freePort();
    await this.startCoordinator();
    if (this.o.netns) this.net = TestNet.create(`rg${this.o.seed % 10000}`);
    for (let i = 0; i < this.o.workers; i++) {
      let listenHost = '127.0.0.1';
      if (this.net) listenHost = (await this.net.addHost(`w${i}`)).gatewayIp;
      const proxy = new FaultyProxy({
        listenHost,
        targetHost: '127.0.0.1',
        targetPort: this.port,
        seed: this.o.seed * 100 + i,
      });
      const addr = await proxy.start();
      this.workerProxies.push(proxy);
      this.workerUrls.push(`http://${addr.host}:${addr.port}`);
      this.workers.push({ name: `worker-${i}`, child: null, stopped: false });
      await this.startWorker(i);
    }
    this.clientProxy = new FaultyProxy({
      targetHost: '127.0.0.1',
      targetPort: this.port,
      seed: this.o.seed * 100 + 99,
    });
    const a = await this.clientProxy.start();
    this.clientUrl = `http://${a.host}:${a.port}`;
  }

  async startCoordinator(): Promise<void> {
    const child = spawn(
      process.execPath,
      [CLI, 'server', '--port', String(this.port), '--db', this.db, '--log-level', 'error'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.coordinator.child = child;
    this.coordinator.stopped = false;
    child.stderr?.on('data', (d: Buffer) => this.o.log(`coordinator: ${d.toString().trim()}`));
    await waitForLine(child, /listening on/, 30_000);
  }

  async startWorker(i: number): Promise<void> {
    const m = this.workers[i]!;
    const args = [
      WORKER_MAIN,
      this.workerUrls[i]!,
      join(this.historyDir, `${m.name}.jsonl`),
      m.name,
      String(this.o.concurrency),
    ];
    const child = this.net
      ? this.net.spawnIn(`w${i}`, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    m.child = child;
    m.stopped = false;
    await waitForLine(child, /joined as|resumed as/, 30_000);
  }

  /** SIGKILL and wait for the exit. */
  async kill(m: Member): Promise<number | undefined> {
    const c = m.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return undefined;
    m.stopped = true;
    const pid = c.pid;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await exited;
    return pid;
  }

  /** Partition one worker: iptables in its namespace, or the proxy's blackhole without namespaces. */
  async partition(i: number, dir: 'both' | 'in' | 'out'): Promise<void> {
    if (this.net) await this.net.partition(`w${i}`, dir);
    else this.workerProxies[i]!.blackhole(true);
  }

  async healPartition(i: number): Promise<void> {
    if (this.net) await this.net.heal(`w${i}`);
    else this.workerProxies[i]!.blackhole(false);
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
    rmSync(join(this.disk, 'filler'), { force: true });
  }

  /** Heals every fault and brings every process back. */
  async healAll(): Promise<void> {
    this.freeDisk();
    for (const p of this.workerProxies) p.heal();
    this.clientProxy?.heal();
    for (let i = 0; i < this.workers.length; i++) {
      await this.healPartition(i);
      const c = this.workers[i]!.child;
      c?.kill('SIGCONT');
      if (!c || c.exitCode !== null || c.signalCode !== null) await this.startWorker(i);
    }
    const cc = this.coordinator.child;
    cc?.kill('SIGCONT');
    if (!cc || cc.exitCode !== null || cc.signalCode !== null) await this.startCoordinator();
  }

  async stop(): Promise<void> {
    for (const m of [...this.workers, this.coordinator]) await this.kill(m).catch(() => undefined);
    for (const p of this.workerProxies) await p.stop();
    await this.clientProxy?.stop();
    await this.net?.destroy();
    if (this.mounted) {
      try {
        execFileSync('umount', [this.disk]);
      } catch {
        execFileSync('umount', ['-l', this.disk]);
      }
      this.mounted = false;
    }
  }
}

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}
