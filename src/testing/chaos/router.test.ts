import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Router, hardClose, socketInode } from './router.js';

/** A server that answers every connection with its tag and closes. */
async function tagServer(tag: string): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.end(tag);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as net.AddressInfo).port };
}

function read(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

/** Connects from another process and prints what it read. */
function readFromChild(port: number): Promise<string> {
  const code = `const s=require('net').connect(${port},'127.0.0.1');let o='';s.on('data',d=>o+=d);s.on('end',()=>{process.stdout.write(o)})`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('exit', () => resolve(out)));
}

void describe('Router', () => {
  const servers: net.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  void it('finds the socket of a connection in /proc/net/tcp', async () => {
    const a = await tagServer('a');
    servers.push(a.server);
    const s = net.connect({ host: '127.0.0.1', port: a.port });
    await new Promise((r) => s.once('connect', r));
    assert.match(socketInode(s.localPort!, a.port) ?? '', /^\d+$/);
    assert.equal(socketInode(s.localPort!, a.port + 1), null);
    s.destroy();
  });

  void it('sends a connection through the route of the process that opened it', async () => {
    const mine = await tagServer('mine');
    const other = await tagServer('other');
    servers.push(mine.server, other.server);
    const router = new Router(
      () => [{ pid: () => process.pid, host: '127.0.0.1', port: mine.port }],
      { host: '127.0.0.1', port: other.port },
    );
    const port = await router.start();
    try {
      assert.equal(await read(port), 'mine');
      assert.equal(await readFromChild(port), 'other');
      assert.deepEqual([router.routed, router.unrouted], [1, 1]);
    } finally {
      await router.stop();
    }
  });

  void it('hardClose closes a socket whose end() is still being sent (a reset would leak it)', async () => {
    const a = await tagServer('a');
    servers.push(a.server);
    const s = net.connect({ host: '127.0.0.1', port: a.port });
    await new Promise((r) => s.once('connect', r));
    s.on('error', () => {});
    const closed = new Promise((r) => s.once('close', r));
    s.write('x', () => {
      s.end();
      hardClose(s);
    });
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error('the socket never closed')), 2000).unref(),
    );
    await Promise.race([closed, timeout]);
  });
});
