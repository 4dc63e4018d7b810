// BullMQ on the Redis at 127.0.0.1:6379, at its default settings (and, for
// fail-over, at its most aggressive documented ones: lockDuration and
// stalledInterval of 1 s). Workers are processes running bullmq's Worker.
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { peerVersion, WORKERS_DIR } from '../lib/paths.mjs';
import { startPeerWorker, stopProcess } from '../lib/procs.mjs';
import { now, pollUntil } from '../lib/util.mjs';

const WORKER = join(WORKERS_DIR, 'bullmq-worker.mjs');
const CHUNK = 1000;

export function version() {
  return peerVersion('bullmq');
}

export function failoverVariants(s) {
  return [
    {
      name: 'defaults',
      settings: 'lockDuration 30 s, stalledInterval 30 s (defaults)',
      kills: s.killsAtDefaults,
      options: {},
    },
    {
      name: 'aggressive',
      settings: 'lockDuration 1 s, stalledInterval 1 s',
      kills: s.kills,
      options: { workerOptions: { lockDuration: 1000, stalledInterval: 1000 } },
    },
  ];
}

export async function create(ctx, { workerOptions = {} } = {}) {
  const id = ctx.nextId();
  const name = `q${id}`;
  const prefix = ctx.redisPrefix;
  const connection = { host: ctx.redis.host, port: ctx.redis.port };
  const queue = new Queue(name, { connection, prefix });
  const events = new QueueEvents(name, { connection, prefix });
  const workers = new Set();
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  return {
    async spawnWorker({ concurrency }) {
      const cfg = { connection, prefix, queue: name, concurrency, workerOptions };
      return startPeerWorker({
        script: WORKER,
        cfg,
        label: 'bullmq worker',
        logFile: join(ctx.tempDir, `bullmq-worker-${id}.log`),
        workers,
      });
    },
    async submitNoop(n) {
      for (let i = 0; i < n; i += CHUNK) {
        const jobs = [];
        for (let j = i; j < Math.min(n, i + CHUNK); j++) jobs.push({ name: 'noop', data: j });
        await queue.addBulk(jobs);
      }
      return {
        // BullMQ keeps completed jobs by default: their count is the number of results.
        async done(deadline) {
          let done = 0;
          const all = await pollUntil(
            async () => {
              done = (await queue.getJobCounts('completed')).completed;
              return done >= n;
            },
            20,
            deadline,
          );
          return { done, capped: !all };
        },
      };
    },
    async roundTrip(i) {
      const job = await queue.add('noop', i);
      const submitted = now();
      await job.waitUntilFinished(events);
      return submitted;
    },
    async submitHold(key) {
      const job = await queue.add('hold', { key });
      return { done: () => job.waitUntilFinished(events) };
    },
    async close() {
      await Promise.all([...workers].map((w) => stopProcess(w)));
      await events.close();
      try {
        await queue.obliterate({ force: true });
      } finally {
        await queue.close();
        await sweepKeys(ctx, `${prefix}:${name}:*`);
      }
    },
  };
}

async function sweepKeys(ctx, pattern) {
  const redis = new Redis({
    host: ctx.redis.host,
    port: ctx.redis.port,
    lazyConnect: true,
    maxRetriesPerRequest: 2,
  });
  await redis.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Removes every Redis key of this invocation. */
export async function sweep(ctx) {
  await sweepKeys(ctx, `${ctx.redisPrefix}:*`);
}
