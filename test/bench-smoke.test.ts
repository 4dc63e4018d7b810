/**
 * A quick run of the benchmark harness (bench/run.mjs --quick) for regroup
 * alone: scenarios a, c and d at tiny sizes, with real server and worker
 * processes. It needs nothing of bench/node_modules (the peers are loaded only
 * when selected). Checks that the JSON is well formed, that every number is
 * there and positive, and that no process of the run outlives it.
 * The figures themselves are not checked: timings belong in benchmarks.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trackDir, trackProcess } from '../src/testing/cleanup.js';

const RUN = fileURLToPath(new URL('../../bench/run.mjs', import.meta.url));

interface Run {
  system: string;
  error?: string;
  [k: string]: unknown;
}
interface Results {
  command: string;
  machine: { cpuModel: string; cores: number; memoryGiB: number; node: string };
  versions: { regroup: { version: string } };
  loadavgStart: number[];
  systems: Record<string, { label: string; error: string | null }>;
  scenarios: Record<string, { sizes: Record<string, number>; runs: Run[] }>;
  targets: { scenario: string; met: boolean | null }[];
}

function runBench(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = trackProcess(
      spawn(process.execPath, [RUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`bench/run.mjs did not finish within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Processes whose command line mentions `marker`. */
function processesMentioning(marker: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(marker)) found.push(`${pid}: ${cmd}`);
    } catch {
      // gone
    }
  }
  return found;
}

const positive = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

describe('bench harness, quick run of regroup alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'regroup-bench-smoke-'));
  trackDir(dir);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs scenarios a, c and d and writes well-formed results with positive numbers', async () => {
    const out = join(dir, 'results.json');
    const work = join(dir, 'work');
    const r = await runBench(
      [
        '--quick',
        '--systems',
        'regroup',
        '--scenarios',
        'a,c,d',
        '--out',
        out,
        '--temp-dir',
        work,
        '--max-minutes',
        '2',
      ],
      150_000,
    );
    assert.equal(r.code, 0, `bench exited ${r.code}:\n${r.stderr}`);
    const res = JSON.parse(readFileSync(out, 'utf8')) as Results;

    assert.match(res.command, /bench\/run\.mjs --quick/);
    assert.ok(
      res.machine.cpuModel && positive(res.machine.cores) && positive(res.machine.memoryGiB),
    );
    assert.match(res.machine.node, /^v\d+/);
    assert.ok(res.versions.regroup.version);
    assert.equal(res.loadavgStart.length, 3);
    assert.deepEqual(Object.keys(res.systems), ['regroup']);
    assert.equal(res.systems['regroup']?.error, null);
    assert.deepEqual(Object.keys(res.scenarios), ['a', 'c', 'd']);

    const only = (key: string): Run => {
      const runs = res.scenarios[key]?.runs ?? [];
      assert.equal(runs.length, 1, `scenario ${key}: ${JSON.stringify(runs)}`);
      const run = runs[0]!;
      assert.equal(run.system, 'regroup');
      assert.equal(run.error, undefined, `scenario ${key} failed: ${run.error}`);
      return run;
    };
    const a = only('a');
    assert.equal(a['done'], res.scenarios['a']?.sizes['tasks']);
    assert.equal(a['capped'], false);
    for (const k of ['tasksPerS', 'totalS', 'submitS'])
      assert.ok(positive(a[k]), `a.${k} = ${String(a[k])}`);

    const c = only('c');
    assert.equal(c['notRecovered'], 0);
    assert.equal(c['recovered'], res.scenarios['c']?.sizes['kills']);
    for (const k of ['p50Ms', 'p99Ms']) assert.ok(positive(c[k]), `c.${k} = ${String(c[k])}`);
    assert.ok((c['samplesMs'] as number[]).every(positive));

    const d = only('d');
    assert.equal(d['roundTrips'], res.scenarios['d']?.sizes['roundTrips']);
    for (const k of ['p50Ms', 'p99Ms', 'meanMs'])
      assert.ok(positive(d[k]), `d.${k} = ${String(d[k])}`);
    assert.ok((d['p99Ms'] as number) >= (d['p50Ms'] as number));

    assert.deepEqual(
      res.targets.map((t) => t.scenario),
      ['a', 'c', 'd'],
    );
    // The table names every scenario and the targets.
    for (const s of ['(a)', '(c)', '(d)', 'targets']) assert.ok(r.stdout.includes(s), r.stdout);

    // Nothing of the run is left: no process, no temp dir.
    assert.deepEqual(processesMentioning(work), []);
    assert.deepEqual(readdirSync(work), []);
  });
  it('runs the tree scenarios g, h and i: each tree or group ends with its planned tasks', async () => {
    const out = join(dir, 'trees.json');
    const work = join(dir, 'work-trees');
    const r = await runBench(
      [
        '--quick',
        '--systems',
        'regroup',
        '--scenarios',
        'g,h,i',
        '--out',
        out,
        '--temp-dir',
        work,
        '--max-minutes',
        '3',
      ],
      210_000,
    );
    assert.equal(r.code, 0, `bench exited ${r.code}:\n${r.stderr}`);
    const res = JSON.parse(readFileSync(out, 'utf8')) as Results;
    assert.deepEqual(Object.keys(res.scenarios), ['g', 'h', 'i']);
    const planned = {
      g: (s: Record<string, number>) => s['tasks'],
      h: (s: Record<string, number>) => 1 + s['spawn']! + s['adders']! * s['perAdd']!,
      i: (s: Record<string, number>) => s['tasks'],
    };
    for (const key of ['g', 'h', 'i'] as const) {
      const sc = res.scenarios[key]!;
      assert.equal(sc.runs.length, 1, `scenario ${key}: ${JSON.stringify(sc.runs)}`);
      const run = sc.runs[0]!;
      assert.equal(run.error, undefined, `scenario ${key} failed: ${run.error}`);
      assert.equal(run['capped'], false);
      assert.equal(run['done'], planned[key](sc.sizes), `scenario ${key}: tasks`);
      for (const k of ['totalS', 'tasksPerS', 'coordinatorPeakRssMiB', 'workerPeakRssMiB'])
        assert.ok(positive(run[k]), `${key}.${k} = ${String(run[k])}`);
    }
    // (g) is a tree: a child group per task above the leaves, as deep as planned.
    const g = res.scenarios['g']!;
    assert.equal(g.runs[0]!['depth'], g.sizes['depth']);
    assert.ok((g.runs[0]!['groups'] as number) > 1);
    assert.deepEqual(
      res.targets.map((t) => [t.scenario, t.met]),
      [
        ['g', true],
        ['h', true],
      ],
    );
    for (const s of ['(g)', '(h)', '(i)']) assert.ok(r.stdout.includes(s), r.stdout);
    assert.deepEqual(processesMentioning(work), []);
    assert.deepEqual(readdirSync(work), []);
  });
});
