// The scenarios. Each run makes a fresh deployment of one system, measures,
// and closes it (processes killed, queues and schemas removed) even on failure.
import { cpuSeconds, memory } from './procfs.mjs';
import { percentile, round, spread } from './stats.mjs';
import { errorText, now, sleep, withTimeout } from './util.mjs';

/** Sizes and bounds of every scenario, full and --quick. */
export function sizes(quick) {
  return quick
    ? {
        a: { tasks: 2_000, workers: 1, concurrency: 50, capS: 20 },
        b: { tasks: 5_000, workers: 2, concurrency: 50, capS: 20 },
        c: { kills: 3, killsAtDefaults: 1, capS: 20, settleMs: 250 },
        d: { roundTrips: 50, warmup: 5, concurrency: 10, capS: 10 },
        e: { tasks: 20_000, workers: 2, concurrency: 50, capS: 60, sampleMs: 250 },
        f: { workers: 20, processes: 2, measureS: 3, settleS: 1 },
        g: {
          tasks: 300,
          depth: 5,
          fanMin: 3,
          fanMax: 4,
          workers: 2,
          concurrency: 4,
          capS: 60,
          sampleMs: 250,
        },
        h: {
          spawn: 1_000,
          adders: 2,
          perAdd: 500,
          workers: 2,
          concurrency: 50,
          capS: 60,
          sampleMs: 250,
        },
        i: { tasks: 2_000, fanout: 10, workers: 2, concurrency: 50, capS: 60, sampleMs: 250 },
      }
    : {
        a: { tasks: 20_000, workers: 1, concurrency: 50, capS: 30 },
        b: { tasks: 100_000, workers: 4, concurrency: 50, capS: 45 },
        c: { kills: 20, killsAtDefaults: 3, capS: 120, settleMs: 250 },
        d: { roundTrips: 500, warmup: 50, concurrency: 10, capS: 30 },
        e: { tasks: 1_000_000, workers: 2, concurrency: 50, capS: 1200, sampleMs: 500 },
        f: { workers: 200, processes: 4, measureS: 20, settleS: 2 },
        // A waiting parent gives its slot back: (g)'s 39,365 parents wait suspended, up to
        // maxSuspended a worker (4 x 20,000 leave room for every one of them).
        g: {
          tasks: 100_000,
          depth: 10,
          fanMin: 3,
          fanMax: 4,
          workers: 4,
          concurrency: 50,
          maxSuspended: 20_000,
          capS: 1200,
          sampleMs: 500,
        },
        h: {
          spawn: 20_000,
          adders: 4,
          perAdd: 20_000,
          workers: 2,
          concurrency: 50,
          capS: 600,
          sampleMs: 500,
        },
        i: { tasks: 100_000, fanout: 10, workers: 2, concurrency: 50, capS: 600, sampleMs: 500 },
      };
}

async function withEnv(sys, ctx, options, fn) {
  const env = await sys.create(ctx, options);
  let result;
  try {
    result = await fn(env);
  } finally {
    await env.close().catch((e) => ctx.log(`${sys.label}: close failed: ${errorText(e)}`));
  }
  // What the system logged at warn or error level during the run, when it tells.
  const diag = env.diagnostics?.();
  if (diag && (diag.warn || diag.error)) result.logged = diag;
  return result;
}

/** (a), (b): N no-op tasks; from the first submit to the last result. */
export async function throughput(sys, ctx, s) {
  return withEnv(sys, ctx, sys.throughputOptions?.(s) ?? {}, async (env) => {
    const started = [];
    for (let i = 0; i < s.workers; i++)
      started.push(env.spawnWorker({ concurrency: s.concurrency, workers: s.workers }));
    await Promise.all(started);
    const load = ctx.loadavg();
    const t0 = now();
    const h = await env.submitNoop(s.tasks);
    const tSubmitted = now();
    const r = await h.done(t0 + s.capS * 1000);
    const t1 = now();
    const seconds = (t1 - t0) / 1000;
    return {
      tasks: s.tasks,
      done: r.done,
      capped: Boolean(r.capped),
      submitS: round((tSubmitted - t0) / 1000, 3),
      totalS: round(seconds, 3),
      tasksPerS: round(r.done / seconds, 1),
      loadavg: load,
    };
  });
}

/** (d): one task submitted and its result received, one after another. */
export async function latency(sys, ctx, s) {
  return withEnv(sys, ctx, sys.latencyOptions?.(s) ?? {}, async (env) => {
    await env.spawnWorker({ concurrency: s.concurrency, workers: 1 });
    const load = ctx.loadavg();
    // Warm-up: at most a tenth of the time bound, so that slow systems still get measured.
    const warmEnd = now() + s.capS * 100;
    for (let i = 0; i < s.warmup && now() < warmEnd; i++) await env.roundTrip(i);
    const deadline = now() + s.capS * 1000;
    const ms = [];
    const submitMs = [];
    for (let i = 0; i < s.roundTrips && now() < deadline; i++) {
      const t = now();
      const submitted = await env.roundTrip(i);
      ms.push(now() - t);
      submitMs.push(submitted - t);
    }
    return {
      roundTrips: ms.length,
      capped: ms.length < s.roundTrips,
      p50Ms: round(percentile(ms, 50), 3),
      p99Ms: round(percentile(ms, 99), 3),
      meanMs: round(ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length), 3),
      maxMs: round(Math.max(...ms), 3),
      // The two halves: until the submit call returned (the task is accepted), then until the result is in.
      submitP50Ms: round(percentile(submitMs, 50), 3),
      resultP50Ms: round(
        percentile(
          ms.map((x, i) => x - submitMs[i]),
          50,
        ),
        3,
      ),
      loadavg: load,
      samplesMs: ms.map((x) => round(x, 3)),
    };
  });
}

/**
 * (c): a worker SIGKILLed while it holds a task, a second worker already
 * running; the time from the kill to the task's start on the second worker.
 * At most `kills` kills; the first one not recovered within capS ends the run.
 */
export async function failover(sys, ctx, s, variant) {
  return withEnv(sys, ctx, variant.options ?? {}, async (env) => {
    const samplesMs = [];
    let notRecovered = 0;
    const kills = variant.kills;
    const spawn = () => env.spawnWorker({ concurrency: 1, workers: 2 });
    let pool = [await spawn(), await spawn()];
    const load = ctx.loadavg();
    for (let k = 0; k < kills; k++) {
      const key = `hold-${ctx.runId}-${k}`;
      const starts = [];
      const offs = pool.map((w) =>
        w.onMessage((m) => {
          if (m?.ev === 'start' && m.key === key) starts.push({ w, at: now(), attempt: m.attempt });
        }),
      );
      try {
        const h = await env.submitHold(key);
        const first = await waitFor(
          () => starts[0],
          30_000,
          `${sys.label}: the hold task did not start`,
        );
        await sleep(s.settleMs);
        const victim = first.w;
        const survivor = pool.find((w) => w !== victim);
        const tKill = now();
        victim.kill('SIGKILL');
        const again = await waitFor(
          () => starts.find((x) => x.w === survivor),
          s.capS * 1000,
          null,
        );
        if (!again) {
          notRecovered++;
          ctx.log(
            `${sys.label} ${variant.name}: kill ${k + 1}: not started again within ${s.capS} s`,
          );
          break;
        }
        samplesMs.push(again.at - tKill);
        ctx.log(
          `${sys.label} ${variant.name}: kill ${k + 1}/${kills}: ${round(again.at - tKill, 1)} ms`,
        );
        survivor.send({ release: key });
        await withTimeout(h.done(), 30_000, `${sys.label}: the result of the held task`);
        await victim.exited;
        pool = [survivor, await spawn()];
      } finally {
        for (const off of offs) off();
      }
    }
    return {
      variant: variant.name,
      settings: variant.settings,
      killsPlanned: kills,
      kills: samplesMs.length + notRecovered,
      recovered: samplesMs.length,
      notRecovered,
      capS: s.capS,
      p50Ms: round(percentile(samplesMs, 50), 1),
      p99Ms: round(percentile(samplesMs, 99), 1),
      maxMs: round(samplesMs.length ? Math.max(...samplesMs) : null, 1),
      samplesMs: samplesMs.map((x) => round(x, 1)),
      loadavg: load,
    };
  });
}

async function waitFor(get, timeoutMs, what) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v) return v;
    if (now() >= deadline) {
      if (what) throw new Error(what + ` within ${timeoutMs / 1000} s`);
      return null;
    }
    await sleep(2);
  }
}

/** (e): one group of many tasks: time to submit, to complete, coordinator peak memory. */
export async function bigGroup(sys, ctx, s) {
  return withEnv(sys, ctx, {}, async (env) => {
    const started = [];
    for (let i = 0; i < s.workers; i++)
      started.push(env.spawnWorker({ concurrency: s.concurrency, workers: s.workers }));
    await Promise.all(started);
    const pid = env.coordinatorPid;
    const base = memory(pid);
    let maxRss = base?.rssMiB ?? 0;
    const timeline = [];
    const t0 = now();
    const sampler = setInterval(() => {
      const m = memory(pid);
      if (!m) return;
      maxRss = Math.max(maxRss, m.rssMiB ?? 0);
      const t = (now() - t0) / 1000;
      if (timeline.length === 0 || t - timeline[timeline.length - 1].s >= 5)
        timeline.push({ s: round(t, 1), rssMiB: round(m.rssMiB, 1) });
    }, s.sampleMs);
    const load = ctx.loadavg();
    let doneAtS = null;
    let lastStatus = null;
    try {
      const h = await env.submitNoop(s.tasks);
      const submitS = (now() - t0) / 1000;
      ctx.log(`${sys.label}: ${s.tasks} tasks submitted in ${round(submitS, 1)} s`);
      let watching = true;
      const watch = (async () => {
        while (watching) {
          try {
            lastStatus = await h.group.status();
            if (lastStatus.done && doneAtS === null) doneAtS = (now() - t0) / 1000;
          } catch {
            // the wait below reports errors
          }
          await sleep(250);
        }
      })();
      const r = await h.done(t0 + s.capS * 1000);
      const totalS = (now() - t0) / 1000;
      watching = false;
      await watch;
      const end = memory(pid);
      return {
        tasks: s.tasks,
        done: r.done,
        capped: Boolean(r.capped),
        submitS: round(submitS, 2),
        doneS: round(doneAtS, 2),
        resultsS: round(totalS, 2),
        tasksPerS: round(r.done / totalS, 1),
        coordinatorBaseRssMiB: round(base?.rssMiB, 1),
        coordinatorPeakRssMiB: round(Math.max(maxRss, end?.hwmMiB ?? 0), 1),
        coordinatorVmHWMMiB: round(end?.hwmMiB, 1),
        coordinatorCpuS: round(cpuSeconds(pid), 1),
        rssTimeline: timeline,
        loadavg: load,
      };
    } finally {
      clearInterval(sampler);
    }
  });
}

/** (f): idle workers connected; the coordinator's CPU time over a window. */
export async function idleWorkers(sys, ctx, s) {
  return withEnv(sys, ctx, {}, async (env) => {
    const per = Math.ceil(s.workers / s.processes);
    const procs = [];
    for (let left = s.workers; left > 0; left -= per)
      procs.push(env.spawnIdleWorkers(Math.min(per, left)));
    const handles = await Promise.all(procs);
    await sleep(s.settleS * 1000);
    const pid = env.coordinatorPid;
    const load = ctx.loadavg();
    const c0 = cpuSeconds(pid);
    const w0 = handles.map((h) => cpuSeconds(h.pid));
    const t0 = now();
    await sleep(s.measureS * 1000);
    const c1 = cpuSeconds(pid);
    const w1 = handles.map((h) => cpuSeconds(h.pid));
    const seconds = (now() - t0) / 1000;
    if (c0 === null || c1 === null)
      throw new Error('cannot read /proc/<pid>/stat of the coordinator');
    const workerCpu = w1.reduce((a, x, i) => a + (x ?? 0) - (w0[i] ?? 0), 0);
    return {
      workers: s.workers,
      processes: handles.length,
      measureS: round(seconds, 2),
      coordinatorCpuPercent: round(((c1 - c0) / seconds) * 100, 2),
      coordinatorRssMiB: round(memory(pid)?.rssMiB, 1),
      workerProcessesCpuPercent: round((workerCpu / seconds) * 100, 2),
      loadavg: load,
    };
  });
}

/** What the root task of (g), (h), (i) is, and how many tasks its tree or group must end with. */
function treeJob(key, s) {
  switch (key) {
    case 'g':
      return {
        handler: 'treeNode',
        input: { budget: s.tasks, depthLeft: s.depth, fanMin: s.fanMin, fanMax: s.fanMax },
        tasks: s.tasks,
        count: (results) => results[0],
      };
    case 'h':
      return {
        handler: 'fanRoot',
        input: { spawn: s.spawn, adders: s.adders, perAdd: s.perAdd },
        // The root, and its child group.
        tasks: 1 + s.spawn + s.adders * s.perAdd,
        count: (results) => ({ tasks: 1 + results[0].tasks, groups: 1, depth: 1 }),
      };
    case 'i':
      return {
        handler: 'grow',
        input: { budget: s.tasks, fanout: s.fanout },
        tasks: s.tasks,
        count: (results) => ({ tasks: results.length, groups: 0, depth: null }),
      };
    default:
      throw new Error(`not a tree scenario: ${key}`);
  }
}

/**
 * (g) a tree by ctx.spawn, (h) one parent's child group of 100,000, (i) a
 * group grown by ctx.add: one root task submitted; from the submit to the
 * root's group's results, with the coordinator's memory sampled throughout.
 * The run fails if the tree or group does not end with the planned number of tasks.
 */
export async function tree(sys, ctx, s, _variant, key) {
  const job = treeJob(key, s);
  return withEnv(sys, ctx, sys.treeOptions?.(s) ?? {}, async (env) => {
    const started = [];
    for (let i = 0; i < s.workers; i++)
      started.push(
        env.spawnWorker({
          concurrency: s.concurrency,
          workers: s.workers,
          ...(s.maxSuspended ? { maxSuspended: s.maxSuspended } : {}),
        }),
      );
    await Promise.all(started);
    const pid = env.coordinatorPid;
    const base = memory(pid);
    let maxRss = base?.rssMiB ?? 0;
    const timeline = [];
    const t0 = now();
    const sampler = setInterval(() => {
      const m = memory(pid);
      if (!m) return;
      maxRss = Math.max(maxRss, m.rssMiB ?? 0);
      const t = (now() - t0) / 1000;
      if (timeline.length === 0 || t - timeline[timeline.length - 1].s >= 5)
        timeline.push({ s: round(t, 1), rssMiB: round(m.rssMiB, 1) });
    }, s.sampleMs);
    const load = ctx.loadavg();
    try {
      const h = await env.submitRoot(job.handler, job.input);
      const r = await h.done(t0 + s.capS * 1000);
      const totalS = (now() - t0) / 1000;
      const end = memory(pid);
      const workerPeaks = env.workerPids().map((p) => memory(p)?.hwmMiB ?? 0);
      const counted = r.capped ? null : job.count(r.results);
      if (counted && counted.tasks !== job.tasks)
        throw new Error(`the tree ended with ${counted.tasks} tasks, not ${job.tasks}`);
      return {
        tasks: job.tasks,
        done: counted ? counted.tasks : null,
        groups: counted ? counted.groups : null,
        depth: counted ? counted.depth : null,
        capped: Boolean(r.capped),
        rootStatus: r.capped ? r.status : undefined,
        totalS: round(totalS, 2),
        tasksPerS: counted ? round(counted.tasks / totalS, 1) : null,
        coordinatorBaseRssMiB: round(base?.rssMiB, 1),
        coordinatorPeakRssMiB: round(Math.max(maxRss, end?.hwmMiB ?? 0), 1),
        coordinatorCpuS: round(cpuSeconds(pid), 1),
        workerPeakRssMiB: round(Math.max(0, ...workerPeaks), 1),
        rssTimeline: timeline,
        loadavg: load,
      };
    } finally {
      clearInterval(sampler);
    }
  });
}

export function summarize(values) {
  const s = spread(values);
  return { median: round(s.median, 3), min: round(s.min, 3), max: round(s.max, 3), n: s.n };
}
