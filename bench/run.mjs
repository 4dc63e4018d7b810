#!/usr/bin/env node
// regroup side by side with BullMQ, pg-boss and graphile-worker.
//
//   node run.mjs [--scenarios a,b,c,d,e,f,g,h,i] [--systems regroup,regroup-pg,bullmq,pgboss,graphile]
//                [--runs N] [--quick] [--out FILE] [--max-minutes M] [--kills N]
//
// Prints a table per scenario and writes every raw number to
// bench/results/<timestamp>.json (or --out). See docs/benchmarks.md.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  loadavg,
  machine,
  peerVersions,
  postgresVersion,
  redisVersion,
  regroupVersion,
} from './lib/machine.mjs';
import { RESULTS_DIR } from './lib/paths.mjs';
import { installExitHandlers, killAll, liveCount } from './lib/procs.mjs';
import { renderText, summarizeScenario, targets } from './lib/report.mjs';
import * as S from './lib/scenarios.mjs';
import { machineBusyPercent } from './lib/procfs.mjs';
import { errorText, now, sleep, withTimeout } from './lib/util.mjs';
import { DEFAULT_SYSTEMS, loadSystem, SYSTEMS } from './systems/index.mjs';

const USAGE = `usage: node run.mjs [options]
  --scenarios a,...,i       which scenarios (default all; g, h, i: trees, regroup only)
  --systems LIST            ${Object.keys(SYSTEMS).join(',')} (default all)
  --runs N                  runs of a, b, d and f per system (default 3; --quick 1)
  --kills N                 kills in (c) for regroup and aggressive settings (default 20; --quick 3)
  --quick                   small sizes, for the smoke test
  --out FILE                JSON file (default bench/results/<timestamp>.json)
  --max-minutes M           bound of the whole invocation (default 60; --quick 5)
  --quiet-below P           before each run, wait until the machine is under P% busy (default 20; --quick 100)
  --quiet-wait S            ... for at most S seconds (default 30)
  --temp-dir DIR            where the run's databases and logs go (default the system's temp dir)
  --postgres URL            default postgres://postgres@127.0.0.1:5432/test
  --redis HOST:PORT         default 127.0.0.1:6379`;

function parse(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenarios: { type: 'string' },
      systems: { type: 'string' },
      runs: { type: 'string' },
      kills: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'max-minutes': { type: 'string' },
      'temp-dir': { type: 'string' },
      'quiet-below': { type: 'string' },
      'quiet-wait': { type: 'string' },
      postgres: { type: 'string' },
      redis: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const list = (s, all) =>
    s
      ? s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : all;
  const scenarios = list(values.scenarios, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
  for (const s of scenarios)
    if (!'abcdefghi'.includes(s) || s.length !== 1)
      throw new Error(`unknown scenario ${s}\n${USAGE}`);
  const systems = list(values.systems, DEFAULT_SYSTEMS);
  for (const s of systems) if (!SYSTEMS[s]) throw new Error(`unknown system ${s}\n${USAGE}`);
  const int = (v, d, what) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be an integer >= 1`);
    return n;
  };
  const [redisHost, redisPort] = (values.redis ?? '127.0.0.1:6379').split(':');
  return {
    scenarios,
    systems,
    quick: values.quick,
    runs: int(values.runs, values.quick ? 1 : 3, '--runs'),
    kills: values.kills === undefined ? null : int(values.kills, 20, '--kills'),
    out: values.out ?? join(RESULTS_DIR, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
    maxMinutes: Number(values['max-minutes'] ?? (values.quick ? 5 : 60)),
    tempDir: values['temp-dir'] ?? os.tmpdir(),
    quietBelow: Number(values['quiet-below'] ?? (values.quick ? 100 : 20)),
    quietWaitS: Number(values['quiet-wait'] ?? 30),
    pgUrl: values.postgres ?? 'postgres://postgres@127.0.0.1:5432/test',
    redis: { host: redisHost, port: Number(redisPort ?? 6379) },
  };
}

function log(msg) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** How long one run of a scenario may take before it is stopped (ms). */
function runBound(key, s, variant) {
  switch (key) {
    case 'c':
      return variant.kills * (s.capS + 45) * 1000 + 60_000;
    case 'f':
      return (s.measureS + s.settleS) * 1000 + 180_000;
    default:
      return s.capS * 1000 + 180_000;
  }
}

async function main() {
  const opts = parse(process.argv.slice(2));
  const sizes = S.sizes(opts.quick);
  if (opts.kills !== null) sizes.c.kills = opts.kills;
  const started = now();
  const deadline = started + opts.maxMinutes * 60_000;
  mkdirSync(opts.tempDir, { recursive: true });
  const tempDir = mkdtempSync(join(opts.tempDir, 'regroup-bench-'));
  const runId = Math.random().toString(36).slice(2, 8);
  let counter = 0;
  const loaded = new Map();
  const ctx = {
    runId,
    tempDir,
    pgUrl: opts.pgUrl,
    pgSchemaPrefix: `bench_${runId}`,
    redis: opts.redis,
    redisPrefix: `rgbench-${runId}`,
    quick: opts.quick,
    nextId: () => ++counter,
    log,
    loadavg,
    async dropPgSchema(schema) {
      const { default: pg } = await import('pg');
      const c = new pg.Client({ connectionString: opts.pgUrl, connectionTimeoutMillis: 5000 });
      await c.connect();
      try {
        await c.query(`drop schema if exists "${schema}" cascade`);
      } finally {
        await c.end();
      }
    },
  };

  const results = {
    tool: 'regroup bench',
    command: ['node', 'bench/run.mjs', ...process.argv.slice(2)].join(' '),
    // Set when started through `npm run bench` (or bench:smoke) at the root.
    npmScript: process.env.npm_lifecycle_event ?? null,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    options: { ...opts, out: undefined, tempDir: undefined },
    machine: machine(),
    loadavgStart: loadavg(),
    loadavgEnd: null,
    versions: { regroup: regroupVersion(), peers: peerVersions(), redis: null, postgres: null },
    systems: {},
    scenarios: {},
    targets: [],
    notes: [],
  };
  const needsPg = opts.systems.some((s) => s !== 'regroup' && s !== 'bullmq');
  const needsRedis = opts.systems.includes('bullmq');
  if (needsPg) results.versions.postgres = await postgresVersion(opts.pgUrl);
  if (needsRedis) results.versions.redis = redisVersion(opts.redis.host, opts.redis.port);

  mkdirSync(dirname(opts.out), { recursive: true });
  const save = () => {
    for (const [k, sc] of Object.entries(results.scenarios))
      sc.summary = summarizeScenario(k, sc.runs);
    results.targets = targets(results);
    writeFileSync(opts.out, JSON.stringify(results, null, 2) + '\n');
  };

  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    killAll();
    for (const sys of loaded.values()) {
      if (sys.sweep)
        await withTimeout(sys.sweep(ctx), 15_000, `${sys.label} sweep`).catch((e) =>
          log(`sweep: ${errorText(e)}`),
        );
    }
    if (needsPg) await sweepPg(ctx).catch((e) => log(`sweep PostgreSQL: ${errorText(e)}`));
    rmSync(tempDir, { recursive: true, force: true });
  };
  installExitHandlers(async () => {
    results.notes.push('interrupted by a signal');
    try {
      save();
    } catch {
      // best effort
    }
    await cleanup();
  });

  for (const name of opts.systems) {
    const sys = await loadSystem(name);
    loaded.set(name, sys);
    results.systems[name] = { label: sys.label, error: sys.error };
    if (sys.error) log(`${sys.label}: ${sys.error}`);
  }

  try {
    for (const key of opts.scenarios) {
      const s = sizes[key];
      const sc = (results.scenarios[key] = { sizes: s, runs: [] });
      const systems = [...loaded.values()].filter((x) => x.scenarios.includes(key));
      // The big ones run once.
      const runs = 'ceghi'.includes(key) ? 1 : opts.runs;
      for (let r = 0; r < runs; r++) {
        // Alternate: each run starts with another system.
        const order = systems.map((_, i) => systems[(i + r) % systems.length]);
        for (const sys of order) {
          const variants =
            key === 'c' && !sys.error
              ? sys.failoverVariants(s)
              : [{ name: 'defaults', settings: 'defaults', kills: s.kills }];
          for (const variant of variants) {
            const rec = { system: sys.name, run: r + 1 };
            if (key === 'c')
              Object.assign(rec, { variant: variant.name, settings: variant.settings });
            sc.runs.push(rec);
            if (sys.error) {
              rec.error = sys.error;
              continue;
            }
            if (variant.skip) {
              rec.error = `not run: ${variant.skip}`;
              continue;
            }
            const left = deadline - now();
            if (left < 10_000) {
              rec.error = `not run: the invocation's bound of ${opts.maxMinutes} min was reached`;
              continue;
            }
            // Between runs: PostgreSQL writes its dirty pages now rather than during the next
            // run, then the machine's own load is sampled while nothing of ours runs.
            if (needsPg) await checkpoint(ctx).catch((e) => log(`CHECKPOINT: ${errorText(e)}`));
            const quiet = await waitQuiet(opts);
            rec.machineBusyBeforePercent = quiet.busy;
            rec.waitedForQuietS = quiet.waitedS;
            log(
              `${key} run ${r + 1}/${runs}: ${sys.label}${key === 'c' ? ` (${variant.name})` : ''} (machine ${rec.machineBusyBeforePercent}% busy before)`,
            );
            const t = now();
            try {
              const fn = {
                a: S.throughput,
                b: S.throughput,
                c: S.failover,
                d: S.latency,
                e: S.bigGroup,
                f: S.idleWorkers,
                g: S.tree,
                h: S.tree,
                i: S.tree,
              }[key];
              const out = await withTimeout(
                fn(sys, ctx, s, variant, key),
                Math.min(runBound(key, s, variant), left),
                `${key} ${sys.label}`,
              );
              Object.assign(rec, out);
            } catch (e) {
              rec.error = errorText(e);
              log(`${key} ${sys.label}: failed: ${rec.error.split('\n')[0]}`);
              killAll(); // a run that timed out may leave its processes: none outlives it
              if (sys.sweep) await sys.sweep(ctx).catch(() => {});
            }
            rec.seconds = Math.round((now() - t) / 100) / 10;
            save();
          }
        }
      }
    }
  } finally {
    results.finishedAt = new Date().toISOString();
    results.loadavgEnd = loadavg();
    results.machine.uptimeEnd = machine().uptime;
    await cleanup();
    save();
  }
  process.stdout.write('\n' + renderText(results) + '\n');
  process.stdout.write(`raw results: ${opts.out}\n`);
  if (liveCount() > 0) log(`warning: ${liveCount()} child processes still running; killed`);
}

/**
 * Waits (at most --quiet-wait seconds) until the machine is less than
 * --quiet-below percent busy over one second: other work on a shared machine
 * (tests of other sessions, PostgreSQL's autovacuum after the last run) would
 * otherwise land in the next run's figures. The last reading is recorded either way.
 */
async function waitQuiet(opts) {
  const t0 = now();
  await sleep(500);
  for (;;) {
    const busy = await machineBusyPercent(1000);
    const waitedS = Math.round((now() - t0) / 100) / 10;
    if (busy === null || busy < opts.quietBelow || waitedS >= opts.quietWaitS)
      return { busy, waitedS };
    await sleep(1000);
  }
}

async function checkpoint(ctx) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: ctx.pgUrl, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    await c.query('checkpoint');
  } finally {
    await c.end();
  }
}

/** Drops every PostgreSQL schema of this invocation. */
async function sweepPg(ctx) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: ctx.pgUrl, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    const r = await c.query('select nspname from pg_namespace where nspname like $1', [
      `${ctx.pgSchemaPrefix}%`,
    ]);
    for (const row of r.rows) await c.query(`drop schema if exists "${row.nspname}" cascade`);
  } finally {
    await c.end();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`error: ${e?.stack ?? e}`);
    killAll();
    process.exit(2);
  },
);
