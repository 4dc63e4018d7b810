/**
 * Security defaults with real processes: bind and token defaults, separate
 * client and worker tokens, 401s with a stable code, slowed guessing, TLS.
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { FailureThrottle, tokensEqual } from '../src/coordinator/auth.js';
import { trackProcess } from '../src/testing/cleanup.js';
import { CLI, Proc, killAll, liveProcesses, startWorker, tempDir } from '../src/testing/procs.js';

const HANDLERS = fileURLToPath(new URL('../../test/fixtures/fault-handlers.js', import.meta.url));
const cleanups: (() => void)[] = [];

afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0)) c();
});
after(() => assert.equal(liveProcesses(), 0, 'a test left a process running'));

function dir(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

async function server(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ proc: Proc; port: number }> {
  const proc = new Proc(
    'coordinator',
    ['server', '--port', '0', '--log-level', 'warn', ...args],
    env,
  );
  const m = await proc.waitFor(/listening on https?:\/\/\S+:(\d+)/);
  return { proc, port: Number(m[1]) };
}

async function status(url: string, token?: string): Promise<{ status: number; code?: string }> {
  const r = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const body = (await r.json()) as { error?: { code: string } };
  return { status: r.status, ...(body.error ? { code: body.error.code } : {}) };
}

function upgrade(port: number, token?: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(
      `ws://127.0.0.1:${port}/v1/worker`,
      token ? { headers: { authorization: `Bearer ${token}` } } : {},
    );
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('error', () => {});
  });
}

describe('security defaults', () => {
  it('tokens compare in constant time and repeated failures are slowed', () => {
    assert.equal(tokensEqual('a'.repeat(20), 'a'.repeat(20)), true);
    assert.equal(tokensEqual('short', 'a much longer token'), false);
    let now = 0;
    const t = new FailureThrottle(() => now);
    for (let i = 0; i < 3; i++) t.failed('1.2.3.4');
    assert.equal(t.delayFor('1.2.3.4'), 0, 'a few mistakes cost nothing');
    t.failed('1.2.3.4');
    const d1 = t.delayFor('1.2.3.4');
    t.failed('1.2.3.4');
    assert.ok(d1 > 0 && t.delayFor('1.2.3.4') > d1, 'each further failure waits longer');
    assert.equal(t.delayFor('5.6.7.8'), 0, 'other addresses are not slowed');
    for (let i = 0; i < 50; i++) t.failed('1.2.3.4');
    assert.equal(t.delayFor('1.2.3.4'), 5000, 'the delay is capped');
    now += 61_000;
    assert.equal(t.delayFor('1.2.3.4'), 0, 'forgotten after a minute');
  });

  it('a non-loopback bind without tokens generates them into a 0600 file; each role needs its own token', async () => {
    const d = dir();
    const db = join(d, 'r.db');
    const { proc, port } = await server(['--host', '0.0.0.0', '--db', db]);
    await proc.waitFor(/tokens generated into (\S+) \(mode 0600\)/);
    const file = `${db}.tokens`;
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const tokens = JSON.parse(readFileSync(file, 'utf8')) as {
      clientToken: string;
      workerToken: string;
    };
    const api = `http://127.0.0.1:${port}/v1/groups`;
    assert.deepEqual(await status(api), { status: 401, code: 'unauthorized' });
    assert.deepEqual(await status(api, 'wrong-token-wrong-token'), {
      status: 401,
      code: 'unauthorized',
    });
    assert.deepEqual(
      await status(api, tokens.workerToken),
      { status: 401, code: 'unauthorized' },
      'the worker token is not a client token',
    );
    assert.equal((await status(api, tokens.clientToken)).status, 200);
    assert.equal(
      (await status(`http://127.0.0.1:${port}/healthz`)).status,
      200,
      'health needs no token',
    );
    assert.equal(await upgrade(port), 401);
    assert.equal(
      await upgrade(port, tokens.clientToken),
      401,
      'the client token is not a worker token',
    );
    assert.equal(await upgrade(port, tokens.workerToken), 101);
    await startWorker(`http://127.0.0.1:${port}`, HANDLERS, 'w1', ['--token', tokens.workerToken]);
    // A restart reuses the same file.
    proc.signal('SIGTERM');
    await proc.exited;
    const again = await server(['--host', '0.0.0.0', '--db', db]);
    await again.proc.waitFor(/tokens read from/);
  });

  it('refuses a token file others can read, and one token alone on a non-loopback bind', async () => {
    const d = dir();
    const file = join(d, 'loose.tokens');
    writeFileSync(
      file,
      JSON.stringify({ clientToken: 'c'.repeat(20), workerToken: 'w'.repeat(20) }),
    );
    chmodSync(file, 0o644);
    const p = new Proc('coordinator', [
      'server',
      '--port',
      '0',
      '--host',
      '0.0.0.0',
      '--db',
      join(d, 'r.db'),
      '--token-file',
      file,
    ]);
    assert.equal(await p.exited, 2);
    assert.match(
      p.out.join('\n'),
      /regroup: unauthorized: refusing to bind 0\.0\.0\.0 .*chmod 600/,
    );
    const q = new Proc('coordinator', [
      'server',
      '--port',
      '0',
      '--host',
      '0.0.0.0',
      '--db',
      join(d, 'r.db'),
      '--client-token',
      'c'.repeat(20),
    ]);
    assert.equal(await q.exited, 2);
    assert.match(q.out.join('\n'), /only one token/);
  });

  it('--insecure runs without authentication and says so', async () => {
    const d = dir();
    const { proc, port } = await server([
      '--host',
      '0.0.0.0',
      '--db',
      join(d, 'r.db'),
      '--insecure',
    ]);
    await proc.waitFor(/WARNING: listening on 0\.0\.0\.0 with no authentication/);
    assert.equal((await status(`http://127.0.0.1:${port}/v1/groups`)).status, 200);
  });

  it('tokens from the environment protect a loopback server too', async () => {
    const d = dir();
    const env = {
      REGROUP_CLIENT_TOKEN: 'client-token-0123456789',
      REGROUP_WORKER_TOKEN: 'worker-token-0123456789',
    };
    const { port } = await server(['--db', join(d, 'r.db')], env);
    assert.equal((await status(`http://127.0.0.1:${port}/v1/groups`)).status, 401);
    assert.equal(
      (await status(`http://127.0.0.1:${port}/v1/groups`, env.REGROUP_CLIENT_TOKEN)).status,
      200,
    );
  });

  it('serves HTTPS and WSS with --tls-cert and --tls-key', async () => {
    const d = dir();
    const cert = join(d, 'cert.pem');
    const key = join(d, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const { port } = await server(['--db', join(d, 'r.db'), '--tls-cert', cert, '--tls-key', key]);
    const url = `https://127.0.0.1:${port}`;
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: cert };
    const worker = new Proc(
      'w1',
      ['worker', '--url', url, '--handlers', HANDLERS, '--name', 'w1'],
      { NODE_EXTRA_CA_CERTS: cert },
    );
    await worker.waitFor(/joined as/);
    const input = join(d, 'in.jsonl');
    writeFileSync(input, '2\n3\n');
    const child = trackProcess(
      spawn(
        process.execPath,
        [CLI, 'submit', '--url', url, '--handler', 'square', '--file', input],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    assert.equal(await new Promise((r) => child.on('exit', r)), 0);
    assert.deepEqual(
      out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { value: number }).value),
      [4, 9],
    );
  });
});
