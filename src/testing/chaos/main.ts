#!/usr/bin/env node
/**
 * `npm run chaos -- --seed <n> --minutes <m>`: one fault run; prints the
 * checker's report and exits non-zero on any anomaly.
 */
import { Command, Option } from 'commander';
import { formatChaos, runChaos } from './harness.js';

const positive =
  (flag: string) =>
  (raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number`);
    return n;
  };

const program = new Command('chaos')
  .description(
    'a fault run: coordinator, workers and a client as real processes, faults from one seed, then the checker',
  )
  .addOption(
    new Option('--seed <n>', 'seed of every random choice')
      .argParser(positive('--seed'))
      .default(1),
  )
  .addOption(
    new Option('--minutes <m>', 'length of the fault phase')
      .argParser(positive('--minutes'))
      .default(2),
  )
  .addOption(
    new Option('--workers <n>', 'worker processes').argParser(positive('--workers')).default(5),
  )
  .addOption(
    new Option('--lanes <n>', 'faults injected at once').argParser(positive('--lanes')).default(8),
  )
  .option('--keep', 'keep the run directory (histories, database, report.json)')
  .option('--require-netns', 'fail when network namespaces are not available');

program.parse();
const f = program.opts<{
  seed: number;
  minutes: number;
  workers: number;
  lanes: number;
  keep?: boolean;
  requireNetns?: boolean;
}>();
const result = await runChaos({
  seed: f.seed,
  minutes: f.minutes,
  workers: f.workers,
  lanes: f.lanes,
  keep: f.keep === true,
  requireNetns: f.requireNetns === true,
});
process.stdout.write(formatChaos(result) + '\n');
process.exit(result.report.ok ? 0 : 1);
