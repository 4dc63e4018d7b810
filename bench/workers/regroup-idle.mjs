// Scenario f: N idle regroup Worker instances in one process, each with its own
// connection and heartbeat. Usage: node regroup-idle.mjs <url> <count>
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT_DIR } from '../lib/paths.mjs';

const [url, countText] = process.argv.slice(2);
const count = Number(countText);
const { Worker } = await import(
  pathToFileURL(join(ROOT_DIR, 'dist', 'src', 'worker', 'index.js')).href
);
const workers = [];
for (let i = 0; i < count; i++) {
  const w = new Worker({
    url,
    handlers: { noop: async () => null },
    concurrency: 1,
    name: `idle-${process.pid}-${i}`,
  });
  workers.push(w);
}
await Promise.all(workers.map((w) => w.start()));
process.send?.({ ev: 'ready', count });
process.on('disconnect', () => process.exit(0));
