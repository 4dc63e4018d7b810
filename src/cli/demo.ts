/**
 * `regroup demo`: a coordinator on a temporary SQLite file, 3 worker
 * processes, a group of a few hundred tasks, and one worker killed with
 * SIGKILL in the middle. It shows what happens and ends with a summary; it
 * exits non-zero if anything was lost or committed twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { checksum, countPrimes, type TileInput, type TileResult } from './demo-handlers.js';
import { intOption } from './log.js';

interface DemoFlags {
  tasks: number;
  workers: number;
  concurrency: number;
  killAt: number;
  keep?: boolean;
}

const CLI = fileURLToPath(new URL('./main.js', import.meta.url));
const HANDLERS = fileURLToPath(new URL('./demo-handlers.js', import.meta.url));

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'run a coordinator and 3 workers here, kill one mid-group, and show that nothing is lost',
    )
    .addOption(
      new Option('--tasks <n>', 'tasks in the group')
        .argParser(intOption('--tasks', 1))
        .default(300),
    )
    .addOption(
      new Option('--workers <n>', 'worker processes')
        .argParser(intOption('--workers', 2))
        .default(3),
    )
    .addOption(
      new Option('--concurrency <n>', 'slots per worker')
        .argParser(intOption('--concurrency', 1))
        .default(4),
    )
    .addOption(
      new Option('--kill-at <percent>', 'kill a worker when this share of tasks is done')
        .argParser(intOption('--kill-at', 1))
        .default(40),
    )
    .option('--keep', 'keep the temporary database')
    .action(async (f: DemoFlags) => {
      const ok = await runDemo(f);
      process.exit(ok ? 0 : 1);
    });
}

/** Prints above the progress bar on a terminal, plainly otherwise. */
class Screen {
  private readonly multi = process.stderr.isTTY
    ? new cliProgress.MultiBar(
        {
          format: ' {bar} {percentage}% | {value}/{total} tasks | {rate}/s',
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  private bar: cliProgress.SingleBar | null = null;
  private lastPlain = -1;
  private readonly started = Date.now();
  private progressStart = 0;

  log(line: string): void {
    const t = ((Date.now() - this.started) / 1000).toFixed(2).padStart(6);
    const text = `[${t}s] ${line}`;
    if (this.multi) this.multi.log(text + '\n');
    else process.stdout.write(text + '\n');
  }

  progress(done: number, total: number): void {
    if (this.progressStart === 0) this.progressStart = Date.now();
    const rate = Math.round(done / Math.max(0.001, (Date.now() - this.progressStart) / 1000));
    if (this.multi) {
      this.bar ??= this.multi.create(total, 0, { rate: 0 });
      this.bar.update(done, { rate });
      return;
    }
    const step = Math.floor((done / total) * 10);
    if (step > this.lastPlain) {
      this.lastPlain = step;
      this.log(`progress ${done}/${total} (${Math.round((done / total) * 100)}%)`);
    }
  }

  stop(): void {
    this.multi?.stop();
  }
}

function startWorker(url: string, name: string, concurrency: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'worker',
      '--url',
      url,
      '--handlers',
      HANDLERS,
      '--name',
      name,
      '--concurrency',
      String(concurrency),
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (/joined as/.test(buf)) resolve(child);
    });
    child.once('exit', (code) =>
      reject(new Error(`worker ${name} exited with ${code} before joining`)),
    );
  });
}

function inputsFor(n: number): TileInput[] {
  // Deterministic spread of durations from 20 to 200 ms.
  return Array.from({ length: n }, (_, index) => ({
    index,
    ms: 20 + ((index * 37) % 181),
    limit: 2000 + (index % 7) * 500,
  }));
}

async function runDemo(f: DemoFlags): Promise<boolean> {
  const { Client } = await import('../client/index.js');
  const { Coordinator } = await import('../coordinator/index.js');
  const { SqliteStore } = await import('../store/sqlite.js');
  const dir = mkdtempSync(join(tmpdir(), 'regroup-demo-'));
  const screen = new Screen();
  const children: ChildProcess[] = [];
  const coordinator = new Coordinator({
    store: new SqliteStore({ path: join(dir, 'demo.db') }),
    port: 0,
  });
  const commits = new Map<number, number>();
  const firstDispatchAfter = new Map<number, number>();
  let requeued: number[] = [];
  let killAt = 0;
  coordinator.events.on('committed', (c) =>
    commits.set(c.taskId, (commits.get(c.taskId) ?? 0) + 1),
  );
  coordinator.events.on('dispatched', (d) => {
    if (killAt === 0 || !requeued.includes(d.taskId) || firstDispatchAfter.has(d.taskId)) return;
    firstDispatchAfter.set(d.taskId, Date.now() - killAt);
    screen.log(
      `task ${d.taskId} re-dispatched to ${coordinator.sessions.get(d.workerId)?.name ?? d.workerId} (attempt ${d.attempt}) ${((Date.now() - killAt) / 1000).toFixed(2)} s after the kill`,
    );
  });
  coordinator.events.on('fact', (f) => {
    if (f.type !== 'worker.dead') return;
    const d = f.data;
    requeued = d.requeued;
    screen.log(
      `${d.name} declared dead (${d.reason}) ${((Date.now() - killAt) / 1000).toFixed(2)} s after the kill: ${d.requeued.length} tasks back to pending`,
    );
  });
  const client = new Client({ url: '' + (await coordinator.start()) });
  try {
    screen.log(
      `coordinator on ${coordinator.url}, SQLite file ${join(dir, 'demo.db')} (WAL, synchronous=FULL)`,
    );
    const names = Array.from({ length: f.workers }, (_, i) => `w${i + 1}`);
    for (const name of names)
      children.push(await startWorker(coordinator.url, name, f.concurrency));
    screen.log(
      `${names.length} worker processes joined (${f.concurrency} slots each): ${children.map((c, i) => `${names[i]}=pid ${c.pid}`).join(', ')}`,
    );
    const inputs = inputsFor(f.tasks);
    const started = Date.now();
    const group = await client.submit<TileResult>('tile', inputs);
    screen.log(`submitted group ${group.id}: ${inputs.length} tasks of 20-200 ms`);
    let done = 0;
    const victim = Math.min(1, children.length - 1);
    for await (const _ of group.results()) {
      done++;
      screen.progress(done, inputs.length);
      if (killAt === 0 && done >= (inputs.length * f.killAt) / 100) {
        const held =
          [...coordinator.sessions.all()].find((s) => s.name === names[victim])?.leases.size ?? 0;
        killAt = Date.now();
        children[victim]!.kill('SIGKILL');
        screen.log(
          `killed ${names[victim]} (pid ${children[victim]!.pid}) with SIGKILL while it ran ${held} tasks`,
        );
      }
    }
    const outcomes = await group.waitSettled();
    const wallMs = Date.now() - started;
    screen.stop();
    return summary({
      inputs,
      outcomes,
      commits,
      requeued,
      firstDispatchAfter,
      wallMs,
      workers: f.workers,
    });
  } finally {
    screen.stop();
    client.close();
    for (const c of children) c.kill('SIGKILL');
    await coordinator.stop();
    if (!f.keep) rmSync(dir, { recursive: true, force: true });
  }
}

function summary(r: {
  inputs: TileInput[];
  outcomes: { index: number; taskId: number; state: string; value?: TileResult }[];
  commits: Map<number, number>;
  requeued: number[];
  firstDispatchAfter: Map<number, number>;
  wallMs: number;
  workers: number;
}): boolean {
  const correct = r.outcomes.filter((o) => {
    const i = r.inputs[o.index]!;
    return (
      o.state === 'succeeded' &&
      o.value?.index === i.index &&
      o.value.primes === countPrimes(i.limit) &&
      o.value.checksum === checksum(i.index)
    );
  }).length;
  const lost = r.inputs.length - r.outcomes.filter((o) => o.state === 'succeeded').length;
  const twice = [...r.commits.values()].filter((n) => n > 1).length;
  const delays = [...r.firstDispatchAfter.values()].sort((a, b) => a - b);
  const notRedispatched = r.requeued.length - delays.length;
  const s = (ms: number | undefined): string =>
    ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`;
  const rows: [string, string][] = [
    ['tasks', String(r.inputs.length)],
    ['results', `${r.outcomes.length} (${correct} correct)`],
    ['workers', `${r.workers} started, 1 killed with SIGKILL`],
    ['tasks reassigned', String(r.requeued.length)],
    ['lost', String(lost)],
    ['results committed twice', String(twice)],
    [
      'kill -> re-dispatch',
      delays.length
        ? `${s(delays[0])} first, ${s(delays[delays.length - 1])} last`
        : 'n/a (the killed worker held no task)',
    ],
    ['wall time', s(r.wallMs)],
  ];
  process.stdout.write('\nregroup demo summary\n');
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(26)}${v}\n`);
  const ok = lost === 0 && twice === 0 && correct === r.inputs.length && notRedispatched === 0;
  process.stdout.write(
    ok ? '\nOK: nothing lost, nothing committed twice.\n' : '\nFAILED: see the figures above.\n',
  );
  return ok;
}
