// pg-boss 10 on the PostgreSQL at 127.0.0.1:5432, in a schema of its own, at
// its default settings (and, for fail-over, at its most aggressive documented
// ones: expireInSeconds 1, maintenance and monitoring every second, polling
// every 0.5 s, the smallest each allows). Concurrency N is one work() loop
// fetching batches of N jobs and running them together (pg-boss 10 has no
// other concurrency option).
import { join } from 'node:path';
import PgBoss from 'pg-boss';
import pg from 'pg';
import { peerVersion, WORKERS_DIR } from '../lib/paths.mjs';
import { startPeerWorker, stopProcess } from '../lib/procs.mjs';
import { now, pollUntil, sleep } from '../lib/util.mjs';

const WORKER = join(WORKERS_DIR, 'pgboss-worker.mjs');
const QUEUE = 'bench';
const CHUNK = 2000;

export function version() {
  return peerVersion('pg-boss');
}

export function failoverVariants(s) {
  return [
    {
      name: 'defaults',
      settings: 'expiration 15 min, maintenance every 2 min (defaults)',
      kills: s.killsAtDefaults,
      options: {},
    },
    {
      name: 'aggressive',
      settings: 'expireInSeconds 1, maintenance and monitor every 1 s, polling 0.5 s',
      kills: s.kills,
      options: {
        bossOptions: {
          expireInSeconds: 1,
          maintenanceIntervalSeconds: 1,
          monitorStateIntervalSeconds: 1,
        },
        queueOptions: { expireInSeconds: 1 },
        workOptions: { pollingIntervalSeconds: 0.5 },
      },
    },
  ];
}

export async function create(ctx, { bossOptions = {}, queueOptions = {}, workOptions = {} } = {}) {
  const id = ctx.nextId();
  const schema = `${ctx.pgSchemaPrefix}_pgboss_${id}`;
  const boss = new PgBoss({ connectionString: ctx.pgUrl, schema, ...bossOptions });
  boss.on('error', (e) => ctx.log(`pg-boss (client) error: ${e.message}`));
  const db = new pg.Client({ connectionString: ctx.pgUrl });
  const workers = new Set();
  const close = async () => {
    await Promise.all([...workers].map((w) => stopProcess(w)));
    await boss.stop({ graceful: false, wait: true }).catch(() => {});
    await db.end().catch(() => {});
    await ctx.dropPgSchema(schema);
  };
  try {
    await boss.start();
    await boss.createQueue(QUEUE, queueOptions);
    await db.connect();
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  const state = async (jobId) =>
    (
      await db.query(`select state from "${schema}".job where name = $1 and id = $2`, [
        QUEUE,
        jobId,
      ])
    ).rows[0]?.state;
  const completed = async (jobId, everyMs, timeoutMs) => {
    const s = await pollUntil(
      async () => {
        const st = await state(jobId);
        if (st === 'failed' || st === 'cancelled') throw new Error(`pg-boss job ${jobId} ${st}`);
        return st === 'completed';
      },
      everyMs,
      now() + timeoutMs,
    );
    if (!s) throw new Error(`pg-boss job ${jobId} not completed within ${timeoutMs / 1000} s`);
  };
  return {
    async spawnWorker({ concurrency }) {
      const cfg = { url: ctx.pgUrl, schema, queue: QUEUE, concurrency, bossOptions, workOptions };
      return startPeerWorker({
        script: WORKER,
        cfg,
        label: 'pg-boss worker',
        logFile: join(ctx.tempDir, `pgboss-worker-${id}.log`),
        workers,
      });
    },
    async submitNoop(n) {
      for (let i = 0; i < n; i += CHUNK) {
        const jobs = [];
        for (let j = i; j < Math.min(n, i + CHUNK); j++) jobs.push({ name: QUEUE, data: { i: j } });
        await boss.insert(jobs);
      }
      return {
        // pg-boss has no result notification: the count of completed jobs, polled.
        async done(deadline) {
          let done = 0;
          const all = await pollUntil(
            async () => {
              const r = await db.query(
                `select count(*)::int as c from "${schema}".job where name = $1 and state = 'completed'`,
                [QUEUE],
              );
              done = r.rows[0].c;
              return done >= n;
            },
            100,
            deadline,
          );
          return { done, capped: !all };
        },
      };
    },
    // No result notification either: the job's state is polled every millisecond.
    async roundTrip(i) {
      const jobId = await boss.send(QUEUE, { i });
      const submitted = now();
      await completed(jobId, 1, 60_000);
      return submitted;
    },
    async submitHold(key) {
      const jobId = await boss.send(QUEUE, { hold: key });
      return { done: () => completed(jobId, 20, 30_000) };
    },
    close,
  };
}

export { sleep };
