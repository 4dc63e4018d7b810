// regroup as a real `regroup server` process (SQLite at synchronous=FULL in a
// temp dir, or PostgreSQL in a schema of its own) with real `regroup worker`
// processes; the client is regroup's Client SDK from the repository's build.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REGROUP_CLI, ROOT_DIR, WORKERS_DIR } from '../lib/paths.mjs';
import { startProcess, stopProcess } from '../lib/procs.mjs';
import { errorText, now, sleep } from '../lib/util.mjs';

const HANDLERS = join(WORKERS_DIR, 'regroup-handlers.mjs');
const IDLE = join(WORKERS_DIR, 'regroup-idle.mjs');

let clientModule = null;
async function loadClient() {
  if (!existsSync(REGROUP_CLI)) {
    throw new Error(
      `regroup is not built (${REGROUP_CLI} is missing): run \`npm run build\` at the root`,
    );
  }
  clientModule ??= await import(
    pathToFileURL(join(ROOT_DIR, 'dist', 'src', 'client', 'index.js')).href
  );
  return clientModule;
}

export function version() {
  const pkg = JSON.parse(readFileSync(join(ROOT_DIR, 'package.json'), 'utf8'));
  return pkg.version;
}

export function failoverVariants(s) {
  return [
    {
      name: 'defaults',
      settings: 'heartbeat 0.5 s, dead after 2 s, close grace 0.5 s (defaults)',
      kills: s.kills,
      options: {},
    },
  ];
}

/** Server flags of the tree scenarios: a worker may hold as many slots, and suspend as many waiting parents, as the scenario gives it. */
export function treeOptions(s) {
  const serverArgs = [];
  if (s.concurrency > 1024) serverArgs.push('--max-worker-slots', String(s.concurrency));
  if (s.maxSuspended > 10_000)
    serverArgs.push('--max-suspended-per-worker', String(s.maxSuspended));
  return { serverArgs };
}

/**
 * One regroup deployment for one scenario run.
 * store: 'sqlite' | 'postgres'. pg: { url, schema } for PostgreSQL.
 */
export async function create(ctx, { store = 'sqlite', serverArgs = [] } = {}) {
  const { Client } = await loadClient();
  const id = ctx.nextId();
  const dir = ctx.tempDir;
  let schema = null;
  const args = [REGROUP_CLI, 'server', '--port', '0', '--host', '127.0.0.1'];
  if (store === 'sqlite') {
    args.push('--db', join(dir, `regroup-${id}.db`), '--synchronous', 'FULL');
  } else {
    schema = `${ctx.pgSchemaPrefix}_rg_${id}`;
    args.push('--postgres', ctx.pgUrl, '--pg-schema', schema);
  }
  args.push(...serverArgs);
  const logFiles = ['server', 'worker', 'idle'].map((k) => join(dir, `regroup-${k}-${id}.log`));
  const server = startProcess({
    args,
    label: `regroup server (${store})`,
    logFile: logFiles[0],
  });
  const workers = new Set();
  let client = null;
  const env = {
    server,
    coordinatorPid: server.pid,
    url: null,
    async start() {
      const m = await server.waitForLine(/listening on (\S+)/, 30_000, 'its listening line');
      env.url = m[1];
      await server.waitForLine(/^role: leader/, 30_000, 'the leader role');
      client = new Client({ url: env.url });
    },
    /** A `regroup worker` process; resolves once the coordinator has welcomed it. */
    async spawnWorker({ concurrency, maxSuspended }) {
      const w = startProcess({
        args: [
          REGROUP_CLI,
          'worker',
          '--url',
          env.url,
          '--handlers',
          HANDLERS,
          '--concurrency',
          String(concurrency),
          ...(maxSuspended === undefined ? [] : ['--max-suspended', String(maxSuspended)]),
          '--log-level',
          'warn',
        ],
        label: 'regroup worker',
        logFile: logFiles[1],
        ipc: true,
      });
      workers.add(w);
      w.exited.then(() => workers.delete(w));
      await w.waitForLine(/joined as/, 30_000, 'its welcome');
      return w;
    },
    /** A process holding `count` Worker instances (idle workers of scenario f). */
    async spawnIdleWorkers(count) {
      const w = startProcess({
        args: [IDLE, env.url, String(count)],
        label: 'regroup idle workers',
        logFile: logFiles[2],
        ipc: true,
      });
      workers.add(w);
      await w.waitForMessage((m) => m?.ev === 'ready', 60_000, 'all its workers welcomed');
      return w;
    },
    /** Submits `n` no-op tasks as one group; `done(deadline)` waits for every result. */
    async submitNoop(n) {
      const inputs = new Array(n);
      for (let i = 0; i < n; i++) inputs[i] = i;
      const group = await client.submit('noop', inputs);
      return {
        async done(deadline) {
          const ac = new AbortController();
          const timer = setTimeout(() => ac.abort(new Error('cap')), Math.max(0, deadline - now()));
          try {
            const results = await group.wait({ signal: ac.signal });
            if (results.length !== n)
              throw new Error(`wait() gave ${results.length} results for ${n} tasks`);
            return { done: n };
          } catch (e) {
            if (!ac.signal.aborted) throw e;
            const s = await group.status();
            return { done: s.succeeded, capped: true };
          } finally {
            clearTimeout(timer);
          }
        },
        group,
      };
    },
    /** One task submitted and its result received. */
    async roundTrip(i) {
      const group = await client.submit('noop', [i]);
      const submitted = now();
      const [r] = await group.wait();
      if (r !== null) throw new Error(`unexpected result ${JSON.stringify(r)}`);
      return submitted;
    },
    /**
     * Submits one task of `handler` (the root of a tree, or the first task of a
     * group that grows); `done(deadline)` waits for its group's results, or
     * reports the group's counters when the deadline comes first.
     */
    async submitRoot(handler, input) {
      const group = await client.submit(handler, [input]);
      return {
        group,
        async done(deadline) {
          const ac = new AbortController();
          const timer = setTimeout(() => ac.abort(new Error('cap')), Math.max(0, deadline - now()));
          try {
            return { results: await group.wait({ signal: ac.signal }) };
          } catch (e) {
            if (!ac.signal.aborted) throw e;
            return { capped: true, status: await group.status() };
          } finally {
            clearTimeout(timer);
          }
        },
      };
    },
    /** The pids of the worker processes running now. */
    workerPids() {
      return [...workers].map((w) => w.pid);
    },
    /** Submits one `hold` task; `done()` waits for its result. */
    async submitHold(key) {
      const group = await client.submit('hold', [{ key }]);
      return { done: () => group.wait() };
    },
    async close() {
      client?.close();
      await Promise.all([...workers].map((w) => stopProcess(w)));
      await stopProcess(server, 'SIGTERM', 5000);
      if (schema) await ctx.dropPgSchema(schema);
    },
    /** Warnings and errors the server and workers logged during the run (JSON log lines). */
    diagnostics() {
      const out = { warn: 0, error: 0, first: [] };
      for (const f of logFiles) {
        let text = '';
        try {
          text = readFileSync(f, 'utf8');
        } catch {
          continue;
        }
        for (const line of text.split('\n')) {
          const m = /"level":"(warn|error)"/.exec(line);
          if (!m) continue;
          out[m[1]]++;
          if (out.first.length < 5) out.first.push(line.replace(/^stderr: /, '').slice(0, 500));
        }
      }
      return out;
    },
  };
  try {
    await env.start();
  } catch (e) {
    await env.close().catch(() => {});
    throw new Error(`regroup server (${store}) did not start: ${errorText(e)}`);
  }
  return env;
}

export { sleep };
