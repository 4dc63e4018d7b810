// Summaries, tables and targets from the raw results of a benchmark invocation.
import { summarize } from './scenarios.mjs';
import { markdownTable, num, textTable } from './table.mjs';

export const TITLES = {
  a: (s) =>
    `(a) ${num(s.tasks, 0)} no-op tasks, ${s.workers} worker process × concurrency ${s.concurrency}: end-to-end tasks/s`,
  b: (s) =>
    `(b) ${num(s.tasks, 0)} no-op tasks, ${s.workers} worker processes × concurrency ${s.concurrency}: end-to-end tasks/s`,
  c: () =>
    `(c) fail-over: a worker SIGKILLed while holding a task, until the task starts on the other worker`,
  d: (s) =>
    `(d) one task submitted and its result received, one after another (${s.roundTrips} after ${s.warmup} warm-up)`,
  e: (s) => `(e) one group of ${num(s.tasks, 0)} tasks (${s.workers} workers × ${s.concurrency})`,
  f: (s) => `(f) ${s.workers} idle workers connected: coordinator CPU over ${s.measureS} s`,
  g: (s) =>
    `(g) a tree of ${num(s.tasks, 0)} tasks by ctx.spawn, ${s.depth} levels below the root, fan-out ${s.fanMin}–${s.fanMax} (${s.workers} workers × ${num(s.concurrency, 0)})`,
  h: (s) =>
    `(h) one parent's child group of ${num(s.spawn + s.adders * s.perAdd, 0)} tasks: a spawn of ${num(s.spawn, 0)}, ${s.adders} of which ctx.add ${num(s.perAdd, 0)} each (${s.workers} workers × ${s.concurrency})`,
  i: (s) =>
    `(i) a group grown by ctx.add from 1 task to ${num(s.tasks, 0)}, up to ${s.fanout} per add (${s.workers} workers × ${s.concurrency})`,
};

function ok(runs, system) {
  return runs.filter((r) => r.system === system && !r.error);
}

function failures(runs, system) {
  return runs.filter((r) => r.system === system && r.error);
}

/** Per-system summaries of one scenario. */
export function summarizeScenario(key, runs) {
  const out = {};
  for (const system of [...new Set(runs.map((r) => r.system))]) {
    const good = ok(runs, system);
    const bad = failures(runs, system);
    const base = { runs: good.length, failed: bad.length, errors: bad.map((r) => r.error) };
    if (key === 'a' || key === 'b') {
      out[system] = {
        ...base,
        tasksPerS: summarize(good.map((r) => r.tasksPerS)),
        capped: good.filter((r) => r.capped).length,
      };
    } else if (key === 'd') {
      out[system] = {
        ...base,
        p50Ms: summarize(good.map((r) => r.p50Ms)),
        p99Ms: summarize(good.map((r) => r.p99Ms)),
        submitP50Ms: summarize(good.map((r) => r.submitP50Ms)),
        resultP50Ms: summarize(good.map((r) => r.resultP50Ms)),
        roundTrips: good.reduce((a, r) => a + r.roundTrips, 0),
      };
    } else if (key === 'c') {
      for (const r of runs.filter((x) => x.system === system)) {
        out[`${system}/${r.variant}`] = r.error
          ? { ...base, variant: r.variant, error: r.error }
          : {
              variant: r.variant,
              settings: r.settings,
              kills: r.kills,
              recovered: r.recovered,
              notRecovered: r.notRecovered,
              capS: r.capS,
              p50Ms: r.p50Ms,
              p99Ms: r.p99Ms,
            };
      }
    } else if (key === 'e' || key === 'g' || key === 'h' || key === 'i') {
      out[system] = { ...base, last: good[good.length - 1] ?? null };
    } else if (key === 'f') {
      out[system] = {
        ...base,
        coordinatorCpuPercent: summarize(good.map((r) => r.coordinatorCpuPercent)),
      };
    }
  }
  return out;
}

const spreadText = (s, digits) =>
  s && s.n > 1 ? `${num(s.min, digits)}–${num(s.max, digits)}` : '';

/** [{ title, header, rows }] for every scenario in the results. */
export function tables(results) {
  const out = [];
  const labels = Object.fromEntries(Object.entries(results.systems).map(([k, v]) => [k, v.label]));
  for (const [key, sc] of Object.entries(results.scenarios)) {
    const title = TITLES[key](sc.sizes);
    const sum = summarizeScenario(key, sc.runs);
    const errorNote = (s) => (s.failed ? `${s.failed} failed: ${s.errors[0]}`.slice(0, 300) : '');
    // Runs that started on a machine already busy (other work, after --quiet-wait ran out).
    const busyNote = (sys) => {
      const busy = sc.runs.filter(
        (r) => r.system === sys && (r.machineBusyBeforePercent ?? 0) >= 20,
      );
      return busy.length
        ? `machine ${busy.map((r) => `${num(r.machineBusyBeforePercent, 0)}%`).join(', ')} busy before ${busy.length} run(s)`
        : '';
    };
    if (key === 'a' || key === 'b') {
      const rows = Object.entries(sum).map(([sys, s]) => {
        const capped = ok(sc.runs, sys).filter((r) => r.capped);
        const capNote = capped.length
          ? `${capped.length} run(s) stopped at ${sc.sizes.capS} s: ${capped.map((r) => num(r.done, 0)).join(', ')} of ${num(sc.sizes.tasks, 0)} done`
          : '';
        return [
          labels[sys],
          num(s.tasksPerS.median, 0),
          spreadText(s.tasksPerS, 0),
          `${s.runs}/${s.runs + s.failed}`,
          [capNote, busyNote(sys), errorNote(s)].filter(Boolean).join('; '),
        ];
      });
      out.push({
        key,
        title,
        header: ['system', 'tasks/s (median)', 'min–max', 'runs', 'notes'],
        rows,
      });
    } else if (key === 'd') {
      const rows = Object.entries(sum).map(([sys, s]) => [
        labels[sys],
        num(s.p50Ms.median, 2),
        spreadText(s.p50Ms, 2),
        num(s.p99Ms.median, 2),
        spreadText(s.p99Ms, 2),
        `${num(s.submitP50Ms.median, 2)} + ${num(s.resultP50Ms.median, 2)}`,
        `${s.runs}/${s.runs + s.failed}`,
        [
          ok(sc.runs, sys).some((r) => r.capped)
            ? `fewer round trips: stopped at ${sc.sizes.capS} s (${ok(sc.runs, sys)
                .map((r) => r.roundTrips)
                .join(', ')})`
            : '',
          busyNote(sys),
          errorNote(s),
        ]
          .filter(Boolean)
          .join('; '),
      ]);
      out.push({
        key,
        title,
        header: [
          'system',
          'p50 ms (median)',
          'min–max',
          'p99 ms (median)',
          'min–max',
          'p50 submit + result ms',
          'runs',
          'notes',
        ],
        rows,
      });
    } else if (key === 'c') {
      const rows = sc.runs.map((r) => {
        const label = labels[r.system];
        if (r.error)
          return [
            label,
            r.variant ?? '',
            r.settings ?? '',
            '',
            '',
            '',
            (r.error.startsWith('not run') ? r.error : `failed: ${r.error}`).slice(0, 300),
          ];
        const p = (x) => (x === null ? '–' : `${num(x / 1000, 2)} s`);
        const nr = r.notRecovered ? `${r.notRecovered} not within ${r.capS} s` : '';
        return [
          label,
          r.variant,
          r.settings,
          `${r.kills}`,
          r.recovered ? p(r.p50Ms) : `not within ${r.capS} s`,
          r.recovered ? p(r.p99Ms) : '–',
          nr,
        ];
      });
      out.push({
        key,
        title,
        header: ['system', 'variant', 'settings', 'kills', 'p50', 'p99', 'notes'],
        rows,
      });
    } else if (key === 'e') {
      const rows = sc.runs.map((r) =>
        r.error
          ? [labels[r.system], '', '', '', '', '', `failed: ${r.error}`.slice(0, 300)]
          : [
              labels[r.system],
              `${num(r.submitS, 1)} s`,
              r.doneS === null ? '–' : `${num(r.doneS, 1)} s`,
              `${num(r.resultsS, 1)} s`,
              num(r.tasksPerS, 0),
              `${num(r.coordinatorPeakRssMiB, 0)} MiB`,
              r.capped
                ? `stopped at ${sc.sizes.capS} s: ${num(r.done, 0)} of ${num(r.tasks, 0)} done`
                : '',
            ],
      );
      out.push({
        key,
        title,
        header: [
          'system',
          'submit',
          'done',
          'all results read',
          'tasks/s',
          'coordinator peak RSS',
          'notes',
        ],
        rows,
      });
    } else if (key === 'g' || key === 'h' || key === 'i') {
      out.push({ key, title, ...treeTable(sc, labels) });
    } else if (key === 'f') {
      const rows = Object.entries(sum).map(([sys, s]) => {
        const last = ok(sc.runs, sys).at(-1);
        return [
          labels[sys],
          `${num(s.coordinatorCpuPercent.median, 2)} %`,
          spreadText(s.coordinatorCpuPercent, 2),
          last ? `${num(last.coordinatorRssMiB, 0)} MiB` : '',
          `${s.runs}/${s.runs + s.failed}`,
          [busyNote(sys), errorNote(s)].filter(Boolean).join('; '),
        ];
      });
      out.push({
        key,
        title,
        header: [
          'system',
          'coordinator CPU (% of one core, median)',
          'min–max',
          'coordinator RSS',
          'runs',
          'notes',
        ],
        rows,
      });
    }
  }
  return out;
}

/** The table of a tree scenario (g, h, i): one row per run. */
function treeTable(sc, labels) {
  const rows = sc.runs.map((r) =>
    r.error
      ? [labels[r.system], '', '', '', '', '', '', `failed: ${r.error}`.slice(0, 300)]
      : [
          labels[r.system],
          r.capped ? `not within ${sc.sizes.capS} s` : num(r.done, 0),
          r.groups === null ? '–' : num(r.groups, 0),
          r.capped ? '–' : `${num(r.totalS, 1)} s`,
          r.tasksPerS === null ? '–' : num(r.tasksPerS, 0),
          `${num(r.coordinatorPeakRssMiB, 0)} MiB`,
          `${num(r.workerPeakRssMiB, 0)} MiB`,
          r.capped ? `root group at the cap: ${JSON.stringify(r.rootStatus)}`.slice(0, 300) : '',
        ],
  );
  return {
    header: [
      'system',
      'tasks',
      'child groups',
      'time',
      'tasks/s',
      'coordinator peak RSS',
      'largest worker peak RSS',
      'notes',
    ],
    rows,
  };
}

/** The issue's targets, measured. */
export function targets(results) {
  const t = [];
  const sc = results.scenarios;
  if (sc.a) {
    const s = summarizeScenario('a', sc.a.runs);
    const rg = s.regroup?.tasksPerS.median ?? null;
    const bq = s.bullmq?.tasksPerS.median ?? null;
    t.push({
      scenario: 'a',
      target: "at least 5× BullMQ's end-to-end tasks/s (SQLite, synchronous=FULL)",
      measured:
        rg === null
          ? 'regroup: no result'
          : bq === null
            ? `regroup ${num(rg, 0)}/s; BullMQ not measured`
            : `regroup ${num(rg, 0)}/s = ${num(rg / bq, 2)}× BullMQ's ${num(bq, 0)}/s`,
      met: rg !== null && bq !== null ? rg >= 5 * bq : null,
    });
  }
  if (sc.c) {
    const r = sc.c.runs.find((x) => x.system === 'regroup' && !x.error);
    t.push({
      scenario: 'c',
      target: "p50 at most 1 s with regroup's defaults",
      measured: r
        ? `p50 ${num(r.p50Ms / 1000, 2)} s, p99 ${num(r.p99Ms / 1000, 2)} s over ${r.recovered} kills`
        : 'no result',
      met: r ? r.p50Ms !== null && r.p50Ms <= 1000 && r.notRecovered === 0 : null,
    });
  }
  if (sc.d) {
    const s = summarizeScenario('d', sc.d.runs).regroup;
    const p50 = s?.p50Ms.median ?? null;
    t.push({
      scenario: 'd',
      target: 'p50 at most 2 ms on loopback',
      measured:
        p50 === null ? 'no result' : `p50 ${num(p50, 2)} ms (p99 ${num(s.p99Ms.median, 2)} ms)`,
      met: p50 === null ? null : p50 <= 2,
    });
  }
  if (sc.e) {
    const r = sc.e.runs.find((x) => x.system === 'regroup' && !x.error);
    t.push({
      scenario: 'e',
      target: `${num(sc.e.sizes.tasks, 0)} tasks complete with the coordinator under 512 MB`,
      measured: r
        ? `${r.capped ? `${num(r.done, 0)} of ${num(r.tasks, 0)} done` : 'all done'} in ${num(r.resultsS, 1)} s; peak RSS ${num(r.coordinatorPeakRssMiB, 0)} MiB`
        : 'no result',
      met: r ? !r.capped && r.coordinatorPeakRssMiB < (512 * 1e6) / 2 ** 20 : null,
    });
  }
  if (sc.f) {
    const s = summarizeScenario('f', sc.f.runs).regroup;
    const cpu = s?.coordinatorCpuPercent.median ?? null;
    t.push({
      scenario: 'f',
      target: 'under 5% of one core',
      measured: cpu === null ? 'no result' : `${num(cpu, 2)} % of one core`,
      met: cpu === null ? null : cpu < 5,
    });
  }
  for (const key of ['g', 'h']) {
    if (!sc[key]) continue;
    const r = sc[key].runs.find((x) => x.system === 'regroup' && !x.error);
    t.push({
      scenario: key,
      target:
        key === 'g'
          ? `a tree of ${num(sc.g.sizes.tasks, 0)} tasks, depth ${sc.g.sizes.depth}, completes (issue 14)`
          : `fan-out of ${num(sc.h.sizes.spawn + sc.h.sizes.adders * sc.h.sizes.perAdd, 0)} under one parent completes (issue 14)`,
      measured: r
        ? r.capped
          ? `not within ${sc[key].sizes.capS} s`
          : `${num(r.done, 0)} tasks in ${num(r.totalS, 1)} s; coordinator peak RSS ${num(r.coordinatorPeakRssMiB, 0)} MiB`
        : 'no result',
      met: r ? !r.capped : null,
    });
  }
  return t;
}

export function renderText(results) {
  const parts = [];
  for (const tb of tables(results)) parts.push(`${tb.title}\n\n${textTable(tb.header, tb.rows)}\n`);
  const t = targets(results);
  if (t.length) {
    parts.push(
      'targets (issue 5)\n\n' +
        textTable(
          ['', 'target', 'measured', 'met'],
          t.map((x) => [
            `(${x.scenario})`,
            x.target,
            x.measured,
            x.met === null ? '?' : x.met ? 'yes' : 'NO',
          ]),
        ) +
        '\n',
    );
  }
  return parts.join('\n');
}

export function renderMarkdown(results) {
  const parts = [];
  for (const tb of tables(results))
    parts.push(`### ${tb.title}\n\n${markdownTable(tb.header, tb.rows)}\n`);
  const t = targets(results);
  if (t.length) {
    parts.push(
      '### Targets (issue 5)\n\n' +
        markdownTable(
          ['', 'target', 'measured', 'met'],
          t.map((x) => [
            `(${x.scenario})`,
            x.target,
            x.measured,
            x.met === null ? '?' : x.met ? 'yes' : '**no**',
          ]),
        ) +
        '\n',
    );
  }
  return parts.join('\n');
}
