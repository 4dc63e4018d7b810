/**
 * A worker process of a fault run: the real Worker runtime running
 * `chaosTask`, writing every run start, end and acknowledgement, and every
 * session the coordinator gives it, to its history.
 * argv: <url[,url...]> <history file> <proc name> [concurrency]
 */
import { Worker } from '../../worker/index.js';
import { HistoryWriter } from '../history.js';
import { chaosTask, type ChaosInput } from './handlers.js';
import type { TaskContext } from '../../worker/index.js';

const [url, file, proc, concurrency] = process.argv.slice(2);
if (!url || !file || !proc) {
  process.stderr.write(
    'usage: worker-main <url[,url...]> <history file> <proc name> [concurrency]\n',
  );
  process.exit(2);
}
const history = new HistoryWriter(file, proc);

async function logged(input: ChaosInput, ctx: TaskContext): Promise<string> {
  history.write({
    type: 'run.start',
    taskId: ctx.taskId,
    attempt: ctx.attempt,
    groupId: ctx.groupId,
    index: ctx.index,
  });
  try {
    const value = await chaosTask(input, ctx);
    history.write({ type: 'run.end', taskId: ctx.taskId, attempt: ctx.attempt, ok: true, value });
    return value;
  } catch (e) {
    history.write({ type: 'run.end', taskId: ctx.taskId, attempt: ctx.attempt, ok: false });
    throw e;
  }
}

const worker = new Worker({
  url: url.split(','),
  handlers: { chaosTask: logged },
  concurrency: Number(concurrency ?? 8),
  name: proc,
  token: process.env['REGROUP_WORKER_TOKEN'],
  logger: () => {},
});
worker.on('ack', (a) =>
  history.write({ type: 'run.ack', taskId: a.taskId, attempt: a.attempt, status: a.status }),
);
worker.on('welcome', ({ workerId, resumed }) => {
  // Before the line the harness waits for: the checker maps the coordinator's deaths to processes by it.
  history.write({ type: 'worker.session', workerId, resumed });
  process.stdout.write(`${proc} ${resumed ? 'resumed' : 'joined'} as ${workerId}\n`);
});
process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
await worker.start();
