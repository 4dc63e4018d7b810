/**
 * Failover times of a PostgreSQL fault run: for each fault on the leader, the
 * time until a coordinator with a newer epoch answered as leader (the
 * `failover` lines the nemesis writes). A pure function of the history.
 */
import { nearestRank } from '../checker.js';
import type { Failover, HistoryLine } from '../history.js';

export interface FailoverFigures {
  samples: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface FailoverSummary extends FailoverFigures {
  /** Leader faults after which no new leader answered within the harness's limit. */
  timeouts: number;
  byKind: Record<string, FailoverFigures>;
}

function figures(ms: number[]): FailoverFigures {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    p50Ms: nearestRank(sorted, 50),
    p99Ms: nearestRank(sorted, 99),
    maxMs: sorted.at(-1) ?? null,
  };
}

export function summarizeFailovers(lines: readonly HistoryLine[]): FailoverSummary {
  const all = lines.filter((l): l is Failover => l.type === 'failover');
  const done = all.filter((l) => l.epoch !== null);
  const kinds = [...new Set(done.map((l) => l.kind))].sort();
  return {
    ...figures(done.map((l) => l.ms)),
    timeouts: all.length - done.length,
    byKind: Object.fromEntries(
      kinds.map((k) => [k, figures(done.filter((l) => l.kind === k).map((l) => l.ms))]),
    ),
  };
}

const ms = (v: number | null): string => (v === null ? '-' : `${v} ms`);

/** Lines for the run summary. */
export function formatFailovers(s: FailoverSummary): string[] {
  const row = (name: string, f: FailoverFigures): string =>
    `${name.padEnd(34)}${ms(f.p50Ms)} / ${ms(f.p99Ms)} (max ${ms(f.maxMs)}, ${f.samples} failovers)`;
  return [
    row('new leader after, p50/p99', s),
    ...Object.entries(s.byKind).map(([k, f]) => row(`  after ${k}`, f)),
    `${'failover timeouts'.padEnd(34)}${s.timeouts}`,
  ];
}
