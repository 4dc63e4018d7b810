/**
 * A byte-level TCP proxy that injects faults between a worker (or client) and
 * the coordinator: delay, cuts, lost replies, blackholes. It knows nothing of
 * HTTP or WebSocket framing, so keep-alive and upgraded connections pass
 * through unchanged until a fault is switched on.
 *
 * Every random choice comes from a seeded PRNG so a failing fault run can be
 * replayed with the same seed. Socket errors never throw and nothing is
 * logged: a fault proxy's job is to break connections.
 */
import net, { type Socket } from 'node:net';

export interface ProxyOptions {
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Default 0 (an ephemeral port). */
  listenPort?: number;
  targetHost: string;
  targetPort: number;
  /** Seed for the PRNG behind jitter and cuts. Default 0x5eed. */
  seed?: number;
}

export interface ProxyStats {
  /** Connections accepted since start. */
  connections: number;
  /** Connections cut by `lossy` or `cutAll`. */
  cuts: number;
  /** Connections whose reply was swallowed by `loseReplies`. */
  swallowed: number;
  /** Bytes delivered to the target. */
  bytesUp: number;
  /** Bytes delivered back to the client. */
  bytesDown: number;
}

/** mulberry32: a tiny, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Above this many queued bytes in one direction the source is paused. */
const HIGH_WATER = 1 << 20;

interface Slow {
  delayMs: number;
  jitterMs: number;
  bytesPerSec: number;
}

/** One direction of one connection: an ordered queue of chunks, each due at a time. */
class Lane {
  private readonly q: { chunk: Buffer | null; at: number }[] = [];
  private queued = 0;
  private lastAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  frozen = false;
  dead = false;

  constructor(
    private readonly src: () => Socket | null,
    private readonly dst: () => Socket | null,
    private readonly onDeliver: (bytes: number) => void,
  ) {}

  /** Queues a chunk (`null` = end of stream) after the current slowness. */
  push(chunk: Buffer | null, slow: Slow, random: () => number): void {
    if (this.dead) return;
    const len = chunk?.length ?? 0;
    let at = Math.max(this.lastAt, Date.now() + slow.delayMs + random() * slow.jitterMs);
    if (slow.bytesPerSec > 0) at += (len * 1000) / slow.bytesPerSec;
    this.lastAt = at;
    this.q.push({ chunk, at });
    this.queued += len;
    this.pump();
  }

  /** Makes every queued chunk due now, order kept (a healed link). */
  release(): void {
    for (const item of this.q) item.at = 0;
    this.lastAt = 0;
    this.pump();
  }

  pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const dst = this.dst();
    while (!this.dead && !this.frozen && !this.waitingDrain && dst && this.q.length > 0) {
      const head = this.q[0]!;
      const wait = head.at - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => this.pump(), wait);
        break;
      }
      this.q.shift();
      if (head.chunk === null) {
        dst.end();
        continue;
      }
      this.queued -= head.chunk.length;
      this.onDeliver(head.chunk.length);
      if (!dst.write(head.chunk)) {
        this.waitingDrain = true;
        dst.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
      }
    }
    this.flow();
  }

  /** Pauses the source while blackholed, blocked on the destination, or too far behind. */
  private flow(): void {
    if (this.dead) return;
    const src = this.src();
    if (this.frozen || this.waitingDrain || this.queued > HIGH_WATER) src?.pause();
    else src?.resume();
  }

  kill(): void {
    this.dead = true;
    clearTimeout(this.timer);
    this.q.length = 0;
    this.queued = 0;
  }
}

/**
 * Closes a socket with an RST where the platform allows, never throwing. A
 * socket already ended on our side is only destroyed: Node 20 cannot reset it
 * then, and the failed reset left it open, spinning the process at exit.
 */
function reset(s: Socket | null): void {
  if (!s || s.destroyed) return;
  if (s.writableEnded) {
    s.destroy();
    return;
  }
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

class Conn {
  upstream: Socket | null = null;
  readonly up: Lane;
  readonly down: Lane;
  /** `held`: a swallowed reply with the sockets kept open, every byte discarded. */
  state: 'open' | 'held' | 'closed' = 'open';
  /** Upstream bytes were delivered since `loseReplies` was armed. */
  requestSent = false;

  constructor(
    readonly client: Socket,
    stats: ProxyStats,
  ) {
    const upstream = (): Socket | null => this.upstream;
    this.up = new Lane(
      () => client,
      upstream,
      (n) => {
        stats.bytesUp += n;
        this.requestSent = true;
      },
    );
    this.down = new Lane(
      upstream,
      () => client,
      (n) => (stats.bytesDown += n),
    );
  }

  close(rst: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.up.kill();
    this.down.kill();
    if (rst) {
      reset(this.client);
      reset(this.upstream);
    } else {
      this.client.destroy();
      this.upstream?.destroy();
    }
  }
}

const CLEAN: Slow = Object.freeze({ delayMs: 0, jitterMs: 0, bytesPerSec: 0 });

export class FaultyProxy {
  private readonly listenHost: string;
  private readonly listenPort: number;
  private target: { host: string; port: number };
  private readonly random: () => number;
  private readonly conns = new Set<Conn>();
  private readonly counters: ProxyStats = {
    connections: 0,
    cuts: 0,
    swallowed: 0,
    bytesUp: 0,
    bytesDown: 0,
  };
  private server: net.Server | null = null;
  private slowness: Slow = CLEAN;
  private cutProbability = 0;
  private blackholed = false;
  private lose: { count: number; until: number; hold: boolean } | null = null;

  constructor(o: ProxyOptions) {
    this.listenHost = o.listenHost ?? '127.0.0.1';
    this.listenPort = o.listenPort ?? 0;
    this.target = { host: o.targetHost, port: o.targetPort };
    this.random = mulberry32(o.seed ?? 0x5eed);
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<ProxyStats> {
    return { ...this.counters };
  }

  async start(): Promise<{ host: string; port: number }> {
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.accept(s));
    server.on('error', () => {});
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, this.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as net.AddressInfo;
    return { host: this.listenHost, port: addr.port };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of this.conns) c.close(false);
    this.conns.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** New connections go to this target; open ones keep theirs. */
  setTarget(host: string, port: number): void {
    this.target = { host, port };
  }

  slow(o: { delayMs: number; jitterMs?: number; bytesPerSec?: number }): void {
    this.slowness = {
      delayMs: o.delayMs,
      jitterMs: o.jitterMs ?? 0,
      bytesPerSec: o.bytesPerSec ?? 0,
    };
  }

  lossy(o: { cutProbability: number }): void {
    this.cutProbability = o.cutProbability;
  }

  /**
   * Arms lost replies: a connection that delivers request bytes upstream after
   * this call has its next downstream data swallowed, then is cut (RST both
   * ways) or, with `hold`, kept open with every later byte discarded. Lasts for
   * `count` connections (default 1 without `forMs`) and/or until `forMs` passes.
   */
  loseReplies(o: { count?: number; forMs?: number; hold?: boolean }): void {
    const count = o.count ?? (o.forMs === undefined ? 1 : Infinity);
    const until = o.forMs === undefined ? Infinity : Date.now() + o.forMs;
    this.lose = { count, until, hold: o.hold ?? false };
    for (const c of this.conns) c.requestSent = false;
  }

  /**
   * Blackhole: new connections are accepted but not connected upstream, and no
   * connection moves data. Sources are paused, not drained, so nothing is lost:
   * when the blackhole lifts, held bytes flow on (as TCP does after a healed
   * partition). Follow with `cutAll()` for connections that died instead.
   */
  blackhole(on: boolean): void {
    this.blackholed = on;
    for (const c of this.conns) {
      c.up.frozen = on;
      c.down.frozen = on;
      if (!on && !c.upstream && c.state === 'open') this.connectUpstream(c);
      c.up.pump();
      c.down.pump();
    }
  }

  cutAll(): void {
    for (const c of this.conns) this.cut(c);
  }

  /** Back to a clean pipe. Connections held by `loseReplies` stay silent. */
  heal(): void {
    this.slowness = CLEAN;
    this.cutProbability = 0;
    this.lose = null;
    this.blackhole(false);
    for (const c of this.conns) {
      c.up.release();
      c.down.release();
    }
  }

  private accept(client: Socket): void {
    this.counters.connections++;
    const c = new Conn(client, this.counters);
    this.conns.add(c);
    client.on('error', () => {});
    client.on('close', (hadError) => this.onClose(c, hadError));
    client.on('data', (chunk: Buffer) => this.onData(c, 'up', chunk));
    client.on('end', () => c.up.push(null, this.slowness, this.random));
    c.up.frozen = c.down.frozen = this.blackholed;
    if (this.blackholed) client.pause();
    else this.connectUpstream(c);
  }

  private connectUpstream(c: Conn): void {
    const s = net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true });
    c.upstream = s;
    s.on('error', () => {});
    s.on('close', (hadError) => this.onClose(c, hadError));
    s.on('data', (chunk: Buffer) => this.onData(c, 'down', chunk));
    s.on('end', () => c.down.push(null, this.slowness, this.random));
    c.up.pump();
  }

  private onData(c: Conn, dir: 'up' | 'down', chunk: Buffer): void {
    if (c.state !== 'open') return;
    if (this.cutProbability > 0 && this.random() < this.cutProbability) return this.cut(c);
    if (dir === 'down' && this.swallows(c)) return;
    (dir === 'up' ? c.up : c.down).push(chunk, this.slowness, this.random);
  }

  /** Whether this reply is lost; if so the connection is cut or held. */
  private swallows(c: Conn): boolean {
    const lose = this.lose;
    if (!lose || !c.requestSent) return false;
    if (lose.count <= 0 || Date.now() > lose.until) {
      this.lose = null;
      return false;
    }
    lose.count--;
    this.counters.swallowed++;
    if (lose.hold) {
      c.state = 'held';
      c.up.kill();
      c.down.kill();
      c.client.resume();
      c.upstream?.resume();
    } else {
      c.close(true);
    }
    return true;
  }

  private cut(c: Conn): void {
    if (c.state === 'closed') return;
    this.counters.cuts++;
    c.close(true);
  }

  /**
   * One side closed. An error (a reset) is passed on as a reset, a held
   * connection goes down whole; a clean close waits for the other side, which
   * gets the end of stream through its lane.
   */
  private onClose(c: Conn, hadError: boolean): void {
    if (hadError || c.state === 'held' || c.upstream === null) c.close(hadError);
    if (c.state === 'closed' || (c.client.destroyed && c.upstream?.destroyed)) {
      c.close(false);
      this.conns.delete(c);
    }
  }
}
