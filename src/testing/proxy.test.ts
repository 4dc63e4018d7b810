import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { FaultyProxy, mulberry32 } from './proxy.js';

/** An echo server (half-close aware) that records what it received. */
class Echo {
  readonly server = net.createServer({ allowHalfOpen: true }, (s) => {
    this.accepted++;
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
    s.on('data', (b: Buffer) => {
      this.bytes += b.length;
      if (this.received.length < 1024) this.received += b.toString('latin1');
    });
    s.pipe(s);
  });
  private readonly sockets = new Set<net.Socket>();
  accepted = 0;
  received = '';
  bytes = 0;
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rejects after `ms`, so a broken pipe fails the test instead of hanging it. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** A client socket that collects what it reads and remembers how it ended. */
class Client {
  readonly socket: net.Socket;
  private chunks: Buffer[] = [];
  length = 0;
  readonly closed: Promise<{ error: string | undefined }>;
  readonly connected: Promise<void>;
  /** The peer half-closed (this socket allows half-open, so it stays open). */
  readonly ended: Promise<void>;
  private wanted: { n: number; resolve: () => void } | null = null;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    this.connected = new Promise((r) => this.socket.once('connect', () => r()));
    this.ended = new Promise((r) => this.socket.once('end', () => r()));
    let error: string | undefined;
    this.socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    this.closed = new Promise((r) => this.socket.once('close', () => r({ error })));
    this.socket.on('data', (b: Buffer) => {
      this.chunks.push(b);
      this.length += b.length;
      if (this.wanted && this.length >= this.wanted.n) this.wanted.resolve();
    });
  }

  get data(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Resolves once `n` bytes have been read in total. */
  read(n: number): Promise<void> {
    if (this.length >= n) return Promise.resolve();
    return new Promise((resolve) => (this.wanted = { n, resolve }));
  }

  async roundTrip(msg: string, ms = 2000): Promise<string> {
    const before = this.length;
    this.socket.write(msg);
    await within(this.read(before + msg.length), ms, `echo of ${msg}`);
    return this.data.subarray(before).toString('latin1');
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('FaultyProxy', () => {
  let echo: Echo;
  let proxy: FaultyProxy;
  let port: number;
  const clients: Client[] = [];
  const connect = (): Client => {
    const c = new Client(port);
    clients.push(c);
    return c;
  };

  before(async () => {
    echo = await new Echo().start();
  });
  after(async () => {
    await echo.stop();
  });

  const fresh = async (seed?: number): Promise<void> => {
    proxy = new FaultyProxy({ targetHost: '127.0.0.1', targetPort: echo.port, seed });
    ({ port } = await proxy.start());
    echo.received = '';
    echo.accepted = 0;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.socket.destroy();
    await proxy.stop();
  });

  it('round-trips through a clean pipe, with half-close', async () => {
    await fresh();
    const c = connect();
    assert.equal(await c.roundTrip('hello'), 'hello');
    assert.equal(await c.roundTrip('again'), 'again');
    c.socket.end('last');
    await within(c.closed, 2000, 'close after half-close');
    assert.equal(c.data.toString(), 'helloagainlast');
    assert.equal(proxy.stats.bytesUp, 14);
    assert.equal(proxy.stats.bytesDown, 14);
  });

  it('carries a large payload intact and propagates backpressure', async () => {
    await fresh();
    const payload = randomBytes(48 << 20);
    const c = connect();
    await c.connected;
    c.socket.pause(); // a reader that does not read
    c.socket.write(payload);
    await sleep(400);
    const echoed = echo.bytes;
    assert.ok(
      echoed < payload.length,
      `echo read ${echoed} of ${payload.length} while nobody read`,
    );
    c.socket.resume();
    await within(c.read(payload.length), 10_000, 'large payload');
    assert.equal(sha(c.data), sha(payload));
  });

  it('slow() delays each direction and throttles bandwidth', async () => {
    await fresh();
    proxy.slow({ delayMs: 150, jitterMs: 20 });
    const c = connect();
    let t0 = Date.now();
    assert.equal(await c.roundTrip('x'), 'x');
    assert.ok(Date.now() - t0 >= 280, `round trip took ${Date.now() - t0} ms`);

    proxy.slow({ delayMs: 0, bytesPerSec: 200_000 });
    t0 = Date.now();
    await c.roundTrip('y'.repeat(50_000), 5000);
    assert.ok(Date.now() - t0 >= 400, `50 kB each way at 200 kB/s took ${Date.now() - t0} ms`);
  });

  it('lossy() with probability 1 cuts on the first chunk', async () => {
    await fresh();
    proxy.lossy({ cutProbability: 1 });
    const c = connect();
    c.socket.write('doomed');
    const { error } = await within(c.closed, 2000, 'cut');
    assert.equal(error, 'ECONNRESET');
    assert.equal(proxy.stats.cuts, 1);
    assert.equal(echo.received, '');
  });

  it('lossy() cuts reproducibly for a seed', async () => {
    const run = async (): Promise<boolean[]> => {
      await fresh(42);
      proxy.lossy({ cutProbability: 0.5 });
      const out: boolean[] = [];
      for (let i = 0; i < 8; i++) {
        const c = connect();
        c.socket.write('a');
        const ok = await Promise.race([c.read(1).then(() => true), c.closed.then(() => false)]);
        out.push(ok);
        c.socket.destroy();
      }
      await proxy.stop();
      return out;
    };
    const a = await within(run(), 5000, 'first run');
    const b = await within(run(), 5000, 'second run');
    assert.deepEqual(a, b);
    assert.ok(a.includes(true) && a.includes(false), `${a}`);
  });

  it('loseReplies() delivers the request, swallows the reply and cuts', async () => {
    await fresh();
    const c = connect();
    assert.equal(await c.roundTrip('warm'), 'warm');
    proxy.loseReplies({ count: 1 });
    c.socket.write('request');
    await within(c.closed, 2000, 'close after lost reply');
    assert.equal(c.data.toString(), 'warm');
    assert.equal(echo.received, 'warmrequest');
    assert.equal(proxy.stats.swallowed, 1);
    // count: 1 is spent; the next connection is clean.
    assert.equal(await connect().roundTrip('next'), 'next');
  });

  it('loseReplies({ hold }) keeps the connection open and silent', async () => {
    await fresh();
    proxy.loseReplies({ forMs: 5000, hold: true });
    const c = connect();
    c.socket.write('request');
    const closed = await Promise.race([c.closed.then(() => true), sleep(400).then(() => false)]);
    assert.equal(closed, false);
    assert.equal(echo.received, 'request');
    assert.equal(c.data.length, 0);
    assert.equal(proxy.stats.swallowed, 1);
  });

  it('blackhole() stops data; heal() restores it', async () => {
    await fresh();
    const old = connect();
    assert.equal(await old.roundTrip('a'), 'a');
    proxy.blackhole(true);
    old.socket.write('b');
    const fresh1 = connect();
    await fresh1.connected; // accepted...
    fresh1.socket.write('c');
    await sleep(300);
    assert.equal(old.data.toString(), 'a'); // ...but nothing moves
    assert.equal(fresh1.data.length, 0);
    assert.equal(echo.accepted, 1);
    proxy.heal();
    assert.equal(await connect().roundTrip('d'), 'd');
    await within(fresh1.read(1), 2000, 'held data on a new connection');
    await within(old.read(2), 2000, 'held data on an old connection');
    assert.equal(old.data.toString(), 'ab');
  });

  it('cutAll() resets every open connection', async () => {
    await fresh();
    const a = connect();
    const b = connect();
    await a.roundTrip('1');
    await b.roundTrip('2');
    proxy.cutAll();
    const [ea, eb] = await within(Promise.all([a.closed, b.closed]), 2000, 'cuts');
    assert.equal(ea.error, 'ECONNRESET');
    assert.equal(eb.error, 'ECONNRESET');
    assert.equal(proxy.stats.cuts, 2);
  });

  it('setTarget() sends new connections elsewhere', async () => {
    await fresh();
    const other = net.createServer((s) => s.end('other'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      proxy.setTarget('127.0.0.1', (other.address() as net.AddressInfo).port);
      const c = connect();
      await within(c.ended, 2000, 'other server');
      assert.equal(c.data.toString(), 'other');
      c.socket.end();
      await within(c.closed, 2000, 'close after both ends');
    } finally {
      await new Promise<void>((r) => other.close(() => r()));
    }
  });

  it('refused upstream looks like a reset to the client', async () => {
    await fresh();
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    proxy.setTarget('127.0.0.1', deadPort);
    const c = connect();
    await within(c.closed, 2000, 'close on refused upstream');
  });

  it('carries HTTP keep-alive requests over one connection', async () => {
    const web = http.createServer((req, res) => res.end(`${req.url}`));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    proxy = new FaultyProxy({
      targetHost: '127.0.0.1',
      targetPort: (web.address() as net.AddressInfo).port,
    });
    const { port: p } = await proxy.start();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string): Promise<string> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: p, path, agent }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
    try {
      assert.equal(await within(get('/one'), 2000, 'GET /one'), '/one');
      assert.equal(await within(get('/two'), 2000, 'GET /two'), '/two');
      assert.equal(proxy.stats.connections, 1);
    } finally {
      agent.destroy();
      web.closeAllConnections();
      await new Promise<void>((r) => web.close(() => r()));
    }
  });

  it('carries a WebSocket, which sees a close on cutAll()', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', r));
    wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
    proxy = new FaultyProxy({
      targetHost: '127.0.0.1',
      targetPort: (wss.address() as net.AddressInfo).port,
    });
    const { port: p } = await proxy.start();
    const ws = new WebSocket(`ws://127.0.0.1:${p}/`);
    ws.on('error', () => {});
    try {
      await within(new Promise((r) => ws.once('open', r)), 2000, 'ws open');
      const reply = new Promise<string>((r) =>
        ws.once('message', (m) => r((m as Buffer).toString())),
      );
      ws.send('ping');
      assert.equal(await within(reply, 2000, 'ws echo'), 'ping');
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      proxy.cutAll();
      assert.equal(await within(closed, 2000, 'ws close'), 1006);
    } finally {
      ws.terminate();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});

/**
 * The whole life of a proxy in a child process, with a chunk waiting on a
 * delay timer, a blackholed connection and a held one: after stop() the
 * child must exit on its own, which it cannot with any handle left open.
 */
const CHILD = `
import net from 'node:net';
const { FaultyProxy } = await import(process.env.PROXY_MODULE);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const echo = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
await new Promise((r) => echo.listen(0, '127.0.0.1', r));
const stats = [];
async function life(fault) {
  const proxy = new FaultyProxy({ targetHost: '127.0.0.1', targetPort: echo.address().port });
  const { port } = await proxy.start();
  fault(proxy);
  const c = await new Promise((r) => {
    const c = net.connect(port, '127.0.0.1', () => r(c));
    c.on('error', () => {});
  });
  c.write('x'.repeat(100000));
  await sleep(100);
  await proxy.stop();
  stats.push(proxy.stats);
}
await life((p) => p.slow({ delayMs: 60000 }));
await life((p) => p.slow({ delayMs: 0, bytesPerSec: 1000 }));
await life((p) => p.loseReplies({ hold: true }));
await life((p) => p.blackhole(true));
await new Promise((r) => echo.close(r));
console.log(JSON.stringify(stats));
`;

describe('FaultyProxy.stop', () => {
  it('closes everything and leaves no handles: the process exits by itself', async () => {
    const ts = import.meta.url.endsWith('.ts');
    const child = spawn(
      process.execPath,
      [...(ts ? ['--import', 'tsx'] : []), '--input-type=module', '-e', CHILD],
      {
        env: {
          ...process.env,
          PROXY_MODULE: new URL(`./proxy.${ts ? 'ts' : 'js'}`, import.meta.url).href,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const code = await within(exited, 8000, `child exit; output: ${out}`);
      assert.equal(code, 0, out);
      const stats = JSON.parse(out) as { connections: number; swallowed: number }[];
      assert.deepEqual(
        stats.map((s) => [s.connections, s.swallowed]),
        [
          [1, 0],
          [1, 0],
          [1, 1],
          [1, 0],
        ],
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

describe('mulberry32', () => {
  it('is deterministic per seed and stays in [0, 1)', () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 1000 }, () => b()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, mulberry32(8)));
  });
});
