// graphile-worker on the PostgreSQL at 127.0.0.1:5432, in a schema of its own,
// at its default settings except the pool: maxPoolSize = concurrency (it warns
// below that), at most 80 connections over all worker processes (the server
// allows 100). A job's result is its row being deleted: graphile-worker keeps
// no results and sends no completion notice, so the rows are polled.
import { join } from 'node:path';
import { makeWorkerUtils } from 'graphile-worker';
import pg from 'pg';
import { peerVersion, WORKERS_DIR } from '../lib/paths.mjs';
import { startPeerWorker, stopProcess } from '../lib/procs.mjs';
import { now, pollUntil } from '../lib/util.mjs';

const WORKER = join(WORKERS_DIR, 'graphile-worker.mjs');
const CHUNK = 1000;

export function version() {
  return peerVersion('graphile-worker');
}

export function failoverVariants(s) {
  return [
    {
      name: 'defaults',
      settings: 'locks reset after 4 h (defaults)',
      kills: s.killsAtDefaults,
      options: {},
    },
    {
      name: 'aggressive',
      settings: 'none shortens it',
      kills: 0,
      skip: "graphile-worker has no setting for this: a crashed worker's locks are reset only after 4 hours (fixed in its resetLockedAt SQL); minResetLockedInterval/maxResetLockedInterval only set how often that check runs",
      options: {},
    },
  ];
}

export async function create(ctx, {} = {}) {
  const id = ctx.nextId();
  const schema = `${ctx.pgSchemaPrefix}_gw_${id}`;
  const db = new pg.Client({ connectionString: ctx.pgUrl });
  let utils = null;
  const workers = new Set();
  const close = async () => {
    await Promise.all([...workers].map((w) => stopProcess(w)));
    await utils?.release().catch(() => {});
    await db.end().catch(() => {});
    await ctx.dropPgSchema(schema);
  };
  try {
    utils = await makeWorkerUtils({ connectionString: ctx.pgUrl, schema });
    await utils.migrate();
    await db.connect();
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  const gone = async (jobId, everyMs, timeoutMs) => {
    const ok = await pollUntil(
      async () =>
        (await db.query(`select 1 from "${schema}"._private_jobs where id = $1`, [jobId]))
          .rowCount === 0,
      everyMs,
      now() + timeoutMs,
    );
    if (!ok)
      throw new Error(`graphile-worker job ${jobId} not completed within ${timeoutMs / 1000} s`);
  };
  return {
    async spawnWorker({ concurrency, workers: count = 1 }) {
      const maxPoolSize = Math.max(2, Math.min(concurrency, Math.floor(80 / count)));
      const cfg = { url: ctx.pgUrl, schema, concurrency, maxPoolSize };
      return startPeerWorker({
        script: WORKER,
        cfg,
        label: 'graphile worker',
        logFile: join(ctx.tempDir, `graphile-worker-${id}.log`),
        workers,
      });
    },
    async submitNoop(n) {
      for (let i = 0; i < n; i += CHUNK) {
        const jobs = [];
        for (let j = i; j < Math.min(n, i + CHUNK); j++)
          jobs.push({ identifier: 'noop', payload: { i: j } });
        await utils.addJobs(jobs);
      }
      return {
        async done(deadline) {
          let left = n;
          const all = await pollUntil(
            async () => {
              left = (await db.query(`select count(*)::int as c from "${schema}"._private_jobs`))
                .rows[0].c;
              return left === 0;
            },
            50,
            deadline,
          );
          return { done: n - left, capped: !all };
        },
      };
    },
    async roundTrip(i) {
      const job = await utils.addJob('noop', { i });
      const submitted = now();
      await gone(job.id, 1, 60_000);
      return submitted;
    },
    async submitHold(key) {
      const job = await utils.addJob('hold', { key });
      return { done: () => gone(job.id, 20, 30_000) };
    },
    close,
  };
}
