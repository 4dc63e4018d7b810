// A graphile-worker process of the benchmark. argv[2]: JSON { url, schema, concurrency, maxPoolSize }.
import { run } from 'graphile-worker';
import { hold } from './hold.mjs';

const cfg = JSON.parse(process.argv[2]);
const runner = await run({
  connectionString: cfg.url,
  schema: cfg.schema,
  concurrency: cfg.concurrency,
  maxPoolSize: cfg.maxPoolSize,
  taskList: {
    noop: async () => {},
    hold: async (payload, helpers) => {
      await hold(payload.key, helpers.job.attempts);
    },
  },
});
process.send?.({ ev: 'ready' });
process.on('disconnect', () => process.exit(0));
void runner.promise.catch((e) => {
  console.error('graphile-worker stopped:', e?.message ?? e);
  process.exit(1);
});
