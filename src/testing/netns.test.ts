import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { netnsAvailable, TestNet } from './netns.js';

// Skipped where namespaces are unavailable, except in CI, where a missing
// capability must fail loudly rather than hide every partition test.
const available = await netnsAvailable();
const skip = !available.ok && !process.env['CI'] ? `netns unavailable: ${available.why}` : false;

const PREFIX = `t${process.pid.toString(36)}`.slice(0, 6);

/** A TCP connect from inside the namespace: prints `connected <greeting>` or `timeout`. */
const TCP_CLIENT = `
const s = require('node:net').connect(+process.argv[2], process.argv[1]);
const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, +process.argv[3]);
s.on('data', (d) => { clearTimeout(t); console.log('connected ' + d); process.exit(0); });
s.on('error', (e) => { clearTimeout(t); console.log('error ' + e.code); process.exit(0); });
`;

/** A TCP server inside the namespace that greets and closes. */
const TCP_SERVER = `
require('node:net').createServer((s) => s.end('hello-from-ns'))
  .listen(+process.argv[2], process.argv[1], () => console.log('listening'));
`;

/** A UDP socket inside the namespace: prints every datagram it gets and echoes it back. */
const UDP_ECHO = `
const u = require('node:dgram').createSocket('udp4');
u.on('message', (m, r) => { console.log('got ' + m); u.send(m, r.port, r.address); });
u.bind(+process.argv[2], process.argv[1], () => console.log('listening'));
`;

/** Collects a child's stdout lines; `waitFor` resolves on a line or rejects after `ms`. */
function lines(child: ChildProcess): {
  all: string[];
  waitFor(re: RegExp, ms: number): Promise<string>;
} {
  const all: string[] = [];
  let waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    for (const l of d.toString().split('\n').filter(Boolean)) {
      all.push(l);
      for (const w of waiters.filter((x) => x.re.test(l))) w.resolve(l);
      waiters = waiters.filter((x) => !x.re.test(l));
    }
  });
  return {
    all,
    waitFor(re, ms) {
      const seen = all.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${re} in ${ms} ms: ${all}`)), ms);
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
      });
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const nsList = (): string => execFileSync('ip', ['netns', 'list']).toString();
const vethList = (): string => execFileSync('ip', ['-o', 'link', 'show']).toString();

describe('TestNet', { skip }, () => {
  let tn: TestNet;
  let gw: { ns: string; ip: string; gatewayIp: string };
  let server: net.Server;
  let serverPort = 0;
  let accepted = 0;

  before(async () => {
    assert.ok(available.ok, `netnsAvailable: ${available.why}`);
    tn = TestNet.create(PREFIX);
    gw = await tn.addHost('a');
    server = net.createServer((s) => {
      accepted++;
      s.on('error', () => {});
      s.end('hello-from-root');
    });
    await new Promise<void>((r) => server.listen(0, gw.gatewayIp, r));
    serverPort = (server.address() as net.AddressInfo).port;
  });

  after(async () => {
    server?.close();
    await tn?.destroy();
  });

  /** Connects from host `a` to the root-side server; the result line. */
  const connectFromHost = async (timeoutMs: number): Promise<string> => {
    const child = tn.spawnIn('a', process.execPath, [
      '-e',
      TCP_CLIENT,
      gw.gatewayIp,
      String(serverPort),
      String(timeoutMs),
    ]);
    return lines(child).waitFor(/^(connected|timeout|error)/, timeoutMs + 3000);
  };

  it('gives the host an address on its own /30 and reaches the gateway', async () => {
    assert.match(gw.ip, /^10\.211\.\d+\.\d+$/);
    assert.match(gw.ns, new RegExp(`^rg-${PREFIX}-a$`));
    assert.equal(await connectFromHost(2000), 'connected hello-from-root');
  });

  it("partition 'both' blocks both ways silently; heal restores", async () => {
    const child = tn.spawnIn('a', process.execPath, ['-e', TCP_SERVER, gw.ip, '7001']);
    const inside = lines(child);
    try {
      await inside.waitFor(/listening/, 3000);
      await tn.partition('a', 'both');
      const before = accepted;
      assert.equal(await connectFromHost(1000), 'timeout'); // DROP, not REJECT: no error
      assert.equal(accepted, before);
      const toHost = net.connect({ host: gw.ip, port: 7001, timeout: 1000 });
      const outcome = await new Promise<string>((r) => {
        toHost.once('timeout', () => r('timeout'));
        toHost.once('connect', () => r('connected'));
        toHost.once('error', (e: NodeJS.ErrnoException) => r(`error ${e.code}`));
      });
      toHost.destroy();
      assert.equal(outcome, 'timeout');
      await tn.heal('a');
      assert.equal(await connectFromHost(2000), 'connected hello-from-root');
    } finally {
      child.kill('SIGKILL');
      await tn.heal('a');
    }
  });

  // One-way drops break a TCP handshake whichever way they point, so the
  // direction is checked with UDP: a datagram from the root namespace to the
  // host, and the host's echo back.
  it("'in' drops what reaches the host, 'out' what leaves it", async () => {
    const child = tn.spawnIn('a', process.execPath, ['-e', UDP_ECHO, gw.ip, '7002']);
    const host = lines(child);
    const udp = dgram.createSocket('udp4');
    const echoes: string[] = [];
    udp.on('message', (m) => echoes.push(m.toString()));
    await new Promise<void>((r) => udp.bind(0, gw.gatewayIp, r));
    await host.waitFor(/listening/, 3000);
    const send = (msg: string): void => udp.send(msg, 7002, gw.ip);
    const probe = async (msg: string): Promise<{ hostGot: boolean; echoed: boolean }> => {
      send(msg);
      await sleep(400);
      return { hostGot: host.all.includes(`got ${msg}`), echoed: echoes.includes(msg) };
    };
    try {
      assert.deepEqual(await probe('clean'), { hostGot: true, echoed: true });
      await tn.partition('a', 'in');
      assert.deepEqual(await probe('in'), { hostGot: false, echoed: false });
      await tn.partition('a', 'out');
      assert.deepEqual(await probe('out'), { hostGot: true, echoed: false });
      await tn.partition('a', 'both');
      assert.deepEqual(await probe('both'), { hostGot: false, echoed: false });
      await tn.heal('a');
      assert.deepEqual(await probe('healed'), { hostGot: true, echoed: true });
    } finally {
      child.kill('SIGKILL');
      udp.close();
      await tn.heal('a');
    }
  });

  it('destroy() removes namespaces, veths and processes, also those of a crashed run', async () => {
    const p2 = `${PREFIX.slice(0, 5)}x`;
    const crashed = TestNet.create(p2);
    await crashed.addHost('b');
    const sleeper = crashed.spawnIn('b', process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    const exited = new Promise((r) => sleeper.once('exit', r));
    assert.match(nsList(), new RegExp(`rg-${p2}-b`));
    // A new run with the same prefix, the first one never destroyed.
    const again = TestNet.create(p2);
    await again.addHost('b');
    await again.destroy();
    await again.destroy(); // idempotent
    let timer: NodeJS.Timeout | undefined;
    const survived = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('a process in the namespace survived')), 3000);
    });
    await Promise.race([exited, survived]).finally(() => clearTimeout(timer));
    assert.doesNotMatch(nsList(), new RegExp(`rg-${p2}-`));
    assert.doesNotMatch(vethList(), new RegExp(`rg${p2}-`));
    await crashed.destroy();
  });

  it('destroy() of the main net leaves nothing', async () => {
    await tn.destroy();
    assert.doesNotMatch(nsList(), new RegExp(`rg-${PREFIX}-`));
    assert.doesNotMatch(vethList(), new RegExp(`rg${PREFIX}-`));
  });
});
