// A pg-boss worker process of the benchmark. argv[2]: JSON { url, schema, queue, concurrency, bossOptions, workOptions }.
import PgBoss from 'pg-boss';
import { hold } from './hold.mjs';

const cfg = JSON.parse(process.argv[2]);
const boss = new PgBoss({ connectionString: cfg.url, schema: cfg.schema, ...cfg.bossOptions });
boss.on('error', (e) => console.error('pg-boss error:', e.message));
await boss.start();
await boss.work(cfg.queue, { batchSize: cfg.concurrency, ...cfg.workOptions }, async (jobs) => {
  const results = await Promise.all(
    jobs.map((job) => (job.data?.hold ? hold(job.data.hold, job.retryCount) : null)),
  );
  return jobs.length === 1 ? results[0] : results;
});
process.send?.({ ev: 'ready' });
process.on('disconnect', () => process.exit(0));
