/**
 * The word count's handlers (`regroup worker --handlers <this module>`).
 *
 *   wordcount   the root task: spawns the map phase, then the reduce phase, and
 *               returns the totals
 *   mapChunk    map: counts one chunk of the corpus, split by key range
 *   reduceRange reduce: adds up one key range over every map's output
 *
 * The corpus is a file every worker can read (one machine here; a shared file
 * system in a real deployment); tasks carry byte ranges of it, not text.
 */
import { open } from 'node:fs/promises';
import { logRun, sleep } from '../lib/tree.js';
import type { TaskContext } from '../../src/index.js';
import {
  countWords,
  mergeParts,
  partition,
  summarize,
  top,
  type Counts,
  type KeyRange,
  type RangeSummary,
  type WordCount,
} from './words.js';

/** The root task's input. */
export interface Job {
  /** The corpus file, readable by every worker at this path. */
  file: string;
  chunks: { start: number; end: number }[];
  ranges: KeyRange[];
  /** How many of the most common words to return. */
  top: number;
  /** Each map and reduce task waits this long after its work (to watch the phases, or kill a worker in one). */
  pauseMs?: number;
}

/** The root task's result. */
export interface Totals {
  words: number;
  distinct: number;
  top: WordCount[];
  ranges: RangeSummary[];
  mapGroup: string;
  reduceGroup: string;
}

export interface MapInput {
  file: string;
  start: number;
  end: number;
  ranges: KeyRange[];
  pauseMs: number;
}

/** A map task's output: its chunk's counts, one part per key range. */
export interface MapOutput {
  parts: Counts[];
}

export interface ReduceInput {
  range: KeyRange;
  /** The part of this range from every map task, in chunk order. */
  parts: Counts[];
  top: number;
  pauseMs: number;
}

export interface ReduceOutput extends RangeSummary {
  top: WordCount[];
}

export async function wordcount(job: Job, ctx: TaskContext): Promise<Totals> {
  const pauseMs = job.pauseMs ?? 0;
  logRun(ctx, { phase: 'root', event: 'start' });
  // Map: one task per chunk. The key names the spawn, so a run of this task
  // again (its worker died) finds the same group and its finished maps.
  const mapInputs: MapInput[] = job.chunks.map((c) => ({
    file: job.file,
    start: c.start,
    end: c.end,
    ranges: job.ranges,
    pauseMs,
  }));
  const maps = await ctx.spawn('mapChunk', mapInputs, { key: 'map' });
  logRun(ctx, { phase: 'root', event: 'spawned', child: 'map', spawned: maps.id });
  const mapped = (await maps.wait()) as MapOutput[];

  // Reduce: one task per key range, given that range's part of every map output.
  const reduceInputs: ReduceInput[] = job.ranges.map((range, r) => ({
    range,
    parts: mapped.map((m) => m.parts[r]!),
    top: job.top,
    pauseMs,
  }));
  const reduces = await ctx.spawn('reduceRange', reduceInputs, { key: 'reduce' });
  logRun(ctx, { phase: 'root', event: 'spawned', child: 'reduce', spawned: reduces.id });
  const reduced = (await reduces.wait()) as ReduceOutput[];

  // The ranges are disjoint, so the top words overall are among each range's top words.
  const candidates = reduced.flatMap((r) => r.top.map((w): [string, number] => [w.word, w.count]));
  const totals: Totals = {
    words: reduced.reduce((n, r) => n + r.words, 0),
    distinct: reduced.reduce((n, r) => n + r.distinct, 0),
    top: top(candidates, job.top),
    ranges: reduced.map(({ range, words, distinct, digest }) => ({
      range,
      words,
      distinct,
      digest,
    })),
    mapGroup: maps.id,
    reduceGroup: reduces.id,
  };
  logRun(ctx, { phase: 'root', event: 'end' });
  return totals;
}

export async function mapChunk(input: MapInput, ctx: TaskContext): Promise<MapOutput> {
  logRun(ctx, { phase: 'map', event: 'start' });
  const file = await open(input.file, 'r');
  let text: string;
  try {
    const buf = Buffer.alloc(input.end - input.start);
    const { bytesRead } = await file.read(buf, 0, buf.length, input.start);
    if (bytesRead !== buf.length)
      throw new Error(`${input.file}: read ${bytesRead} of ${buf.length} bytes at ${input.start}`);
    text = buf.toString('latin1');
  } finally {
    await file.close();
  }
  const parts = partition(countWords(text), input.ranges);
  await sleep(input.pauseMs);
  logRun(ctx, { phase: 'map', event: 'end' });
  return { parts };
}

export async function reduceRange(input: ReduceInput, ctx: TaskContext): Promise<ReduceOutput> {
  logRun(ctx, { phase: 'reduce', event: 'start' });
  const counts = mergeParts(input.parts);
  await sleep(input.pauseMs);
  logRun(ctx, { phase: 'reduce', event: 'end' });
  return { ...summarize(input.range, counts), top: top(counts, input.top) };
}
