/**
 * A fault run, end to end: start the cluster, let the client submit groups
 * while the nemesis works, heal everything, wait for every group, read the
 * final state and check the history against it. On SQLite (one coordinator)
 * or PostgreSQL (several coordinators, one leading; leader faults and
 * failover times).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventView, GroupView, TaskView } from '../../protocol/http.js';
import { check, formatReport, type Report } from '../checker.js';
import { trackDir, trackProcess, WATCH_PARENT } from '../cleanup.js';
import { HistoryWriter, readHistory } from '../history.js';
import { netnsAvailable } from '../netns.js';
import { CLIENT_MAIN, Cluster, writeJson } from './cluster.js';
import { formatFailovers, summarizeFailovers, type FailoverSummary } from './failover.js';
import { expected, expectedTasks } from './handlers.js';
import { FAULT_KINDS, Nemesis, PG_FAULT_KINDS } from './nemesis.js';
import { chaosSchema } from './pg-coordinators.js';

/** The default database of PostgreSQL mode (the CLI and tests pass REGROUP_PG_URL). */
export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface PostgresChaosOptions {
  /** Default DEFAULT_PG_URL. A fresh schema is made for the run and dropped after it. */
  url?: string;
  /** Coordinator processes; default 3. */
  coordinators?: number;
  /** The leader's lease (`regroup server --lease-ms`); default 4000. */
  leaseMs?: number;
}

export interface ChaosOptions {
  seed: number;
  /** Length of the fault phase. */
  minutes: number;
  /**
   * Go on past `minutes` (up to `maxMinutes`) until every kind has been
   * injected this many times.
   */
  minEachKind?: number;
  maxMinutes?: number;
  workers?: number;
  concurrency?: number;
  /** Faults injected at once. */
  lanes?: number;
  /** After the faults are healed, how long groups may take to finish. */
  settleMs?: number;
  /** Keep the run's directory (histories, final.json: the final state read, report.json, logs) for inspection. */
  keep?: boolean;
  /** SQLite mode: fail instead of falling back when network namespaces are not available. */
  requireNetns?: boolean;
  /** PostgreSQL mode; absent: SQLite. */
  postgres?: PostgresChaosOptions;
  log?: (line: string) => void;
}

export interface ChaosResult {
  store: 'sqlite' | 'postgres';
  report: Report;
  dir: string;
  faults: Record<string, number>;
  /** Faults that threw midway (a process that would not restart, no leader to target...), by kind. */
  failed: Record<string, number>;
  /** PostgreSQL mode: time from each fault on the leader until a new leader answered. */
  failover: FailoverSummary | null;
  /** Connections through each link's proxies (see Cluster.linkStats). */
  links: ReturnType<Cluster['linkStats']>;
  elapsedMs: number;
  netns: boolean;
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

/**
 * Everything the store holds, read through the API (the same for any store).
 * Groups are listed newest first, paged by `after=<next>` (exact: groups made
 * in one tick share a createdAt, and none of them is skipped).
 */
async function finalState(
  url: string,
): Promise<{ groups: GroupView[]; tasks: TaskView[]; events: EventView[] }> {
  const byId = new Map<string, GroupView>();
  let next: string | null = null;
  do {
    const page: { groups: GroupView[]; next: string | null } = await getJson(
      `${url}/v1/groups?limit=1000${next === null ? '' : `&after=${next}`}`,
    );
    for (const g of page.groups) byId.set(g.id, g);
    next = page.next;
  } while (next !== null);
  const groups = [...byId.values()];
  const tasks: TaskView[] = [];
  for (const g of groups) {
    let after = -1;
    for (;;) {
      const page = await getJson<{ tasks: TaskView[]; next: number | null }>(
        `${url}/v1/groups/${g.id}/tasks?after=${after}&limit=5000`,
      );
      tasks.push(...page.tasks);
      if (page.next === null) break;
      after = page.next;
    }
  }
  const events: EventView[] = [];
  let seq = 0;
  for (;;) {
    const page = await getJson<{ events: EventView[] }>(`${url}/v1/events?after=${seq}&limit=1000`);
    events.push(...page.events);
    if (page.events.length < 1000) break;
    seq = page.events[page.events.length - 1]!.seq;
  }
  return { groups, tasks, events };
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), `regroup-chaos-${o.seed}-`));
  // Removed if the process is interrupted (with the tmpfs inside); a failed run forgets it, to keep it.
  const tracked = trackDir(dir);
  // Every line also goes to harness.log in the run directory (kept when a run fails).
  const logFile = join(dir, 'harness.log');
  const out = o.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const log = (line: string): void => {
    out(line);
    appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
  };
  const pg = o.postgres;
  // PostgreSQL mode runs workers on loopback (see cluster.ts for why).
  const ns = pg
    ? { ok: false, why: 'PostgreSQL mode runs workers on loopback' }
    : await netnsAvailable();
  if (!ns.ok && o.requireNetns && !pg)
    throw new Error(`network namespaces are needed for partition faults: ${ns.why}`);
  if (!ns.ok)
    log(`chaos: no network namespaces (${ns.why}); partitions are emulated by proxy blackholes`);
  const cluster = new Cluster({
    dir,
    seed: o.seed,
    workers: o.workers ?? 5,
    concurrency: o.concurrency ?? 8,
    diskBytes: 256 * 1024 * 1024,
    netns: ns.ok,
    ...(pg
      ? {
          postgres: {
            url: pg.url ?? DEFAULT_PG_URL,
            schema: chaosSchema(o.seed),
            coordinators: pg.coordinators ?? 3,
            leaseMs: pg.leaseMs ?? 4000,
          },
        }
      : {}),
    log,
  });
  let report: Report | null = null;
  let faults: Record<string, number> = {};
  let failed: Record<string, number> = {};
  let client: ChildProcess | null = null;
  try {
    await cluster.start();
    log(
      `chaos: seed ${o.seed}, ${cluster.workers.length} workers, coordinators ${cluster.coordinatorUrls.join(' ')}${pg ? ` (PostgreSQL schema ${chaosSchema(o.seed)})` : ''}, run dir ${dir}`,
    );
    const faultUntil = Date.now() + o.minutes * 60_000;
    const hardUntil = faultUntil + Math.max(0, (o.maxMinutes ?? 0) - o.minutes) * 60_000;
    const settleMs = o.settleMs ?? 120_000;
    // Up to about 100 tasks/s of 50-500 ms, so most of the 5 x 8 slots are busy and faults
    // hit running tasks; at most 8 groups in flight, so the backlog stays bounded. Of those,
    // at most 2 whose tasks spawn and wait (client-main.ts): a waiting parent gives its slot
    // back (suspend), and should one keep it (past the worker's maxSuspended), such parents
    // hold at most 16 of the 40 slots, so children always find slots once faults are healed.
    const params = {
      seed: o.seed,
      submitUntil: faultUntil,
      waitUntil: hardUntil + settleMs,
      minTasks: 50,
      maxTasks: 250,
      everyMs: 1500,
      maxGroups: 100_000,
      maxInFlight: 8,
      maxSpawningInFlight: 2,
    };
    const child = trackProcess(
      spawn(
        process.execPath,
        [
          ...WATCH_PARENT,
          CLIENT_MAIN,
          cluster.clientUrls.join(','),
          join(cluster.historyDir, 'client-1.jsonl'),
          'client-1',
          JSON.stringify(params),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    client = child;
    cluster.clientPid = child.pid ?? null;
    const clientDone = new Promise<number | null>((r) => child.once('exit', r));
    const nemesis = new Nemesis(cluster, {
      seed: o.seed,
      lanes: o.lanes ?? 8,
      until: faultUntil,
      minEach: o.minEachKind ?? 0,
      hardUntil,
      deadAfterMs: 2000,
      // A failover already takes seconds; PostgreSQL mode rests its coordinators less.
      ...(pg ? { coordinatorRestMs: [1500, 4000] as [number, number] } : {}),
      log,
    });
    const progress = setInterval(
      () =>
        log(
          `chaos: ${Math.round((Date.now() - started) / 1000)} s, faults so far ${Object.values(nemesis.counts).reduce((a, b) => a + b, 0)}`,
        ),
      30_000,
    );
    await nemesis.run();
    clearInterval(progress);
    faults = nemesis.counts;
    failed = nemesis.failed;
    log(
      `chaos: fault phase over (${Object.values(faults).reduce((a, b) => a + b, 0)} faults); healing`,
    );
    await cluster.healAll();
    const code = await clientDone;
    // No worker may commit while the final state is read: the snapshot must be one moment.
    // The checker judges no death (nor run) from here on: these kills are no fault.
    new HistoryWriter(join(cluster.historyDir, 'harness.jsonl'), 'harness').write({
      type: 'harness.stop',
    });
    for (const w of cluster.workers) await cluster.kill(w);
    log(`chaos: client finished (exit ${code}); reading the final state`);
    const final = await finalState(await cluster.servingUrl());
    // Kept with the histories, so the checker can be run again on a kept run (SQLite's database goes with its tmpfs).
    writeJson(join(dir, 'final.json'), final);
    const history = readHistory(cluster.historyDir);
    // The coordinators run with `regroup server`'s defaults, the checker's too.
    report = check(history, final, { expected, expectedTasks });
    const failover = pg ? summarizeFailovers(history) : null;
    const links = cluster.linkStats();
    writeJson(join(dir, 'report.json'), {
      seed: o.seed,
      minutes: o.minutes,
      store: pg ? 'postgres' : 'sqlite',
      faults,
      failed,
      report,
      failover,
      links,
    });
    return {
      store: pg ? 'postgres' : 'sqlite',
      report,
      dir,
      faults,
      failed,
      failover,
      links,
      elapsedMs: Date.now() - started,
      netns: ns.ok,
    };
  } finally {
    // A run that failed midway must not leave its client behind either.
    if (client && client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
    await cluster.stop().catch((e: unknown) => log(`chaos: stop failed: ${(e as Error).message}`));
    if (!o.keep && report?.ok) rmSync(dir, { recursive: true, force: true });
    tracked.forget();
  }
}

export function formatChaos(r: ChaosResult): string {
  const all = r.store === 'postgres' ? PG_FAULT_KINDS : FAULT_KINDS;
  const kinds = all.map((k) => `${k} ${r.faults[k] ?? 0}`).join(', ');
  return [
    `store: ${r.store}; faults by kind: ${kinds}`,
    formatReport(r.report),
    ...(r.failover ? formatFailovers(r.failover) : []),
    `faults that failed midway: ${
      Object.entries(r.failed)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none'
    }`,
    `connections: workers ${r.links.workers.join(' ')}, client ${r.links.client}${r.store === 'postgres' ? `; routed ${r.links.routed}, unrouted ${r.links.unrouted}` : ''}`,
    `elapsed ${(r.elapsedMs / 1000).toFixed(0)} s${r.report.ok ? '' : `; histories kept in ${r.dir}`}`,
  ].join('\n');
}
