import { Command, Option } from 'commander';
import { RegroupError } from '../core/errors.js';
import { intOption, makeLogger, parseLevel } from './log.js';

interface WorkerFlags {
  url: string;
  handlers: string;
  concurrency: number;
  name?: string;
  labels?: string;
  token?: string;
  drainTimeoutMs: number;
  maxSuspended: number;
  logLevel: string;
}

export function workerCommand(): Command {
  return new Command('worker')
    .description(
      'run a worker: the exported functions of --handlers are the handlers, by export name',
    )
    .requiredOption(
      '--handlers <module>',
      'path of a .js/.mjs/.ts module whose exported functions are handlers',
    )
    .option(
      '--url <urls>',
      'coordinator URL, or several separated by commas',
      process.env['REGROUP_URL'] ?? 'http://127.0.0.1:7070',
    )
    .addOption(
      new Option('--concurrency <n>', 'tasks run at once (slots)')
        .argParser(intOption('--concurrency', 1))
        .default(10),
    )
    .option('--name <name>', 'name shown in logs and status (default host-pid)')
    .option('--labels <labels>', 'comma-separated labels that task `requires` match')
    .option('--token <token>', 'worker token (also REGROUP_WORKER_TOKEN)')
    .addOption(
      new Option(
        '--drain-timeout-ms <n>',
        'on SIGTERM, how long running tasks may finish before they are handed back',
      )
        .argParser(intOption('--drain-timeout-ms'))
        .default(30_000),
    )
    .addOption(
      new Option(
        '--max-suspended <n>',
        'handlers waiting on a group they spawned that give their slot back at once (0: they keep it)',
      )
        .argParser(intOption('--max-suspended', 0))
        .default(10_000),
    )
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (f: WorkerFlags) => {
      const logger = makeLogger(parseLevel(f.logLevel), 'worker');
      const { Worker, loadHandlers } = await import('../worker/index.js');
      const handlers = await loadHandlers(f.handlers);
      const token = f.token ?? process.env['REGROUP_WORKER_TOKEN'];
      const worker = new Worker({
        url: f.url
          .split(',')
          .map((u) => u.trim())
          .filter(Boolean),
        handlers,
        concurrency: f.concurrency,
        labels: f.labels
          ? f.labels
              .split(',')
              .map((l) => l.trim())
              .filter(Boolean)
          : [],
        drainTimeoutMs: f.drainTimeoutMs,
        maxSuspended: f.maxSuspended,
        logger,
        ...(f.name ? { name: f.name } : {}),
        ...(token ? { token } : {}),
      });
      worker.on('welcome', ({ workerId, resumed }) => {
        process.stdout.write(
          `worker ${f.name ?? ''} ${resumed ? 'resumed' : 'joined'} as ${workerId}\n`,
        );
      });
      let draining = false;
      const drain = (signal: string): void => {
        if (draining) {
          void worker.close().then(() => process.exit(1));
          return;
        }
        draining = true;
        logger('info', `${signal}: draining (again to stop at once)`);
        worker.drain().then(
          () => process.exit(0),
          (e: unknown) => {
            logger('error', 'drain failed', { err: (e as Error).message });
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => drain('SIGTERM'));
      process.on('SIGINT', () => drain('SIGINT'));
      process.stdout.write(
        `worker ${f.name ?? ''} handlers: ${Object.keys(handlers).join(', ')}\n`,
      );
      // Stopping before the first welcome (Ctrl-C while the coordinator is
      // unreachable) ends start() with `closed`: that is the stop asked for,
      // not a failure, and the drain above sets the exit code.
      await worker.start().catch((e: unknown) => {
        if (draining && e instanceof RegroupError && e.code === 'closed') return;
        throw e;
      });
    });
}
