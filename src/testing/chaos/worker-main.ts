/**
 * A worker process of a fault run: the real Worker runtime running the
 * handlers of handlers.ts, writing every run start, end and acknowledgement,
 * what its runs' adds and spawns answered and when their waits on children
 * resolved, and every session the coordinator gives it, to its history.
 * argv: <url[,url...]> <history file> <proc name> [concurrency]
 */
import { Worker } from '../../worker/index.js';
import { HistoryWriter } from '../history.js';
import {
  chaosBatch,
  chaosCrawl,
  chaosSteps,
  chaosTask,
  chaosTreeSum,
  type BatchInput,
  type ChaosInput,
  type CrawlInput,
  type StepsInput,
  type TreeInput,
  type TreeRecorder,
} from './handlers.js';
import type { TaskContext } from '../../worker/index.js';

const [url, file, proc, concurrency] = process.argv.slice(2);
if (!url || !file || !proc) {
  process.stderr.write(
    'usage: worker-main <url[,url...]> <history file> <proc name> [concurrency]\n',
  );
  process.exit(2);
}
const history = new HistoryWriter(file, proc);

const recorder: TreeRecorder = {
  added: (ctx, key, inputs, { first, count }) =>
    history.write({
      type: 'run.add',
      taskId: ctx.taskId,
      attempt: ctx.attempt,
      groupId: ctx.groupId,
      key,
      first,
      count,
      inputs,
    }),
  spawned: (ctx, key, handler, inputs, childId) =>
    history.write({
      type: 'run.spawn',
      taskId: ctx.taskId,
      attempt: ctx.attempt,
      groupId: ctx.groupId,
      key,
      childId,
      handler,
      inputs,
    }),
  waited: (ctx, childId, total, succeeded) =>
    history.write({
      type: 'run.waited',
      taskId: ctx.taskId,
      attempt: ctx.attempt,
      childId,
      total,
      succeeded,
    }),
};

/** The handler with its run's start and end written to the history. */
function logged<I, R>(
  fn: (input: I, ctx: TaskContext, rec: TreeRecorder) => Promise<R>,
): (input: I, ctx: TaskContext) => Promise<R> {
  return async (input, ctx) => {
    history.write({
      type: 'run.start',
      taskId: ctx.taskId,
      attempt: ctx.attempt,
      groupId: ctx.groupId,
      index: ctx.index,
    });
    try {
      const value = await fn(input, ctx, recorder);
      // A run its worker ended before the handler returned (its own timeoutMs, a revoke)
      // reports no value: the worker drops it (and a timeout was reported as a failure).
      if (ctx.signal.aborted) throw new Error('returned after its run ended');
      history.write({ type: 'run.end', taskId: ctx.taskId, attempt: ctx.attempt, ok: true, value });
      return value;
    } catch (e) {
      history.write({ type: 'run.end', taskId: ctx.taskId, attempt: ctx.attempt, ok: false });
      throw e;
    }
  };
}

const worker = new Worker({
  url: url.split(','),
  handlers: {
    chaosTask: logged<ChaosInput, string>(chaosTask),
    chaosCrawl: logged<CrawlInput, string>(chaosCrawl),
    chaosTreeSum: logged<TreeInput, number>(chaosTreeSum),
    chaosBatch: logged<BatchInput, number>(chaosBatch),
    chaosSteps: logged<StepsInput, number>(chaosSteps),
  },
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
