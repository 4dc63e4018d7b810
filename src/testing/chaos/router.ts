/**
 * The front door of one coordinator in PostgreSQL mode: the URL it
 * advertises. Workers and the client all connect here (first, or when a
 * standby sends them to the leader), and each connection goes on through the
 * fault proxy of the process that opened it: worker i's own proxy to this
 * coordinator, or the client's.
 *
 * Why: a standby names the leader by one URL, the same for everybody, but
 * each worker's traffic must pass its own proxy for its link faults and
 * partitions to hold. Every process shares one loopback (PostgreSQL mode
 * runs workers without network namespaces), so the router tells them apart
 * by who owns the connecting socket: the socket's inode in /proc/net/tcp,
 * then that inode among each process's open descriptors. Linux only, like
 * the rest of the harness. A connection of no known process (its process
 * died before it was accepted) goes the fallback way and is counted.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net, { type Socket } from 'node:net';

export interface Route {
  /** The pid of a process whose connections take this route (null: down). */
  pid: () => number | null | undefined;
  host: string;
  port: number;
}

/** The inode of the IPv4 TCP socket from 127.0.0.1:fromPort to 127.0.0.1:toPort, or null. */
export function socketInode(fromPort: number, toPort: number, table?: string): string | null {
  const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  const local = `0100007F:${hex(fromPort)}`;
  const remote = `0100007F:${hex(toPort)}`;
  for (const line of (table ?? readFileSync('/proc/net/tcp', 'utf8')).split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) return f[9] ?? null;
  }
  return null;
}

/** Whether process `pid` has the socket `inode` open. */
export function owns(pid: number, inode: string): boolean {
  const want = `socket:[${inode}]`;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // gone
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === want) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

/**
 * Closes with a reset, except after end(): Node 20 cannot reset a socket
 * whose shutdown is pending (the reset fails with EINVAL and the handle is
 * never closed, so the process spins at exit instead of exiting).
 */
export function hardClose(s: Socket): void {
  if (s.destroyed) return;
  if (s.writableEnded || s.connecting) s.destroy();
  else s.resetAndDestroy();
}

/** A reset on one side is passed on as a reset; a close as a close. */
function splice(a: Socket, b: Socket): void {
  a.pipe(b);
  a.on('error', () => hardClose(b));
  a.on('close', () => b.destroy());
}

export class Router {
  private server: net.Server | null = null;
  private readonly open = new Set<Socket>();
  port = 0;
  /** Connections sent by route. */
  routed = 0;
  /** Connections of no known process (sent the fallback way). */
  unrouted = 0;

  /** `routes`: one per process (each worker, the client); `fallback`: any other connection. */
  constructor(
    private readonly routes: () => readonly Route[],
    private readonly fallback: { host: string; port: number },
  ) {}

  async start(port = 0): Promise<number> {
    const server = net.createServer((s) => this.accept(s));
    server.on('error', () => {});
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  private accept(s: Socket): void {
    s.pause();
    this.open.add(s);
    s.on('close', () => this.open.delete(s));
    s.on('error', () => {});
    const inode = s.remotePort === undefined ? null : socketInode(s.remotePort, this.port);
    const route =
      inode === null
        ? undefined
        : this.routes().find((r) => {
            const pid = r.pid();
            return typeof pid === 'number' && owns(pid, inode);
          });
    if (route) this.routed++;
    else this.unrouted++;
    const to = route ?? this.fallback;
    const up = net.connect({ host: to.host, port: to.port });
    this.open.add(up);
    up.on('close', () => this.open.delete(up));
    splice(s, up);
    splice(up, s);
    s.resume();
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.open) s.destroy();
    this.open.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
