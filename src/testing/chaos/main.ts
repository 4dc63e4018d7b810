#!/usr/bin/env node
/**
 * `npm run chaos -- --seed <n> --minutes <m> [--store postgres]`: one fault
 * run; prints the checker's report and exits non-zero on any anomaly.
 */
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { DEFAULT_PG_URL, formatChaos, runChaos } from './harness.js';

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
  .addOption(
    new Option('--store <kind>', 'sqlite: one coordinator; postgres: several, one leading')
      .choices(['sqlite', 'postgres'])
      .default('sqlite'),
  )
  .option('--postgres', 'the same as --store postgres')
  .addOption(
    new Option('--postgres-url <url>', 'PostgreSQL database (a fresh schema per run)')
      .env('REGROUP_PG_URL')
      .default(DEFAULT_PG_URL),
  )
  .addOption(
    new Option('--coordinators <n>', 'PostgreSQL mode: coordinator processes')
      .argParser(positive('--coordinators'))
      .default(3),
  )
  .addOption(
    new Option('--lease-ms <n>', "PostgreSQL mode: the leader's lease")
      .argParser(positive('--lease-ms'))
      .default(4000),
  )
  .addOption(
    new Option('--min-each-kind <n>', 'go on past --minutes until every kind was injected n times')
      .argParser(positive('--min-each-kind'))
      .default(0),
  )
  .addOption(
    new Option(
      '--max-minutes <m>',
      'with --min-each-kind: stop the faults by then all the same',
    ).argParser(positive('--max-minutes')),
  )
  .option('--json <file>', 'also write the result (report, faults, failovers) to this file')
  .option('--keep', 'keep the run directory (histories, final.json, report.json, logs)')
  .option('--require-netns', 'fail when network namespaces are not available');

program.parse();
const f = program.opts<{
  seed: number;
  minutes: number;
  workers: number;
  lanes: number;
  keep?: boolean;
  requireNetns?: boolean;
  minEachKind: number;
  maxMinutes?: number;
  json?: string;
  store: 'sqlite' | 'postgres';
  postgres?: boolean;
  postgresUrl: string;
  coordinators: number;
  leaseMs: number;
}>();
const pg = f.store === 'postgres' || f.postgres === true;
const result = await runChaos({
  seed: f.seed,
  minutes: f.minutes,
  workers: f.workers,
  lanes: f.lanes,
  keep: f.keep === true,
  requireNetns: f.requireNetns === true,
  minEachKind: f.minEachKind,
  ...(f.maxMinutes === undefined ? {} : { maxMinutes: f.maxMinutes }),
  ...(pg
    ? { postgres: { url: f.postgresUrl, coordinators: f.coordinators, leaseMs: f.leaseMs } }
    : {}),
});
if (f.json !== undefined) writeFileSync(f.json, JSON.stringify(result, null, 2) + '\n');
process.stdout.write(formatChaos(result) + '\n');
process.exit(result.report.ok ? 0 : 1);
