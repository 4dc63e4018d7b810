// A BullMQ worker process of the benchmark. argv[2]: JSON { connection, prefix, queue, concurrency, workerOptions }.
import { Worker } from 'bullmq';
import { hold } from './hold.mjs';

const cfg = JSON.parse(process.argv[2]);
const worker = new Worker(
  cfg.queue,
  async (job) => {
    if (job.name === 'hold') return hold(job.data.key, job.attemptsStarted);
    return null;
  },
  {
    connection: { ...cfg.connection, maxRetriesPerRequest: null },
    prefix: cfg.prefix,
    concurrency: cfg.concurrency,
    ...cfg.workerOptions,
  },
);
worker.on('error', (e) => console.error('bullmq worker error:', e.message));
await worker.waitUntilReady();
process.send?.({ ev: 'ready' });
process.on('disconnect', () => process.exit(0));
