/**
 * The client's side of the word count: writes the corpus, builds the root
 * task's input, counts the same text in this process, and compares.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chunkBoundaries, generateCorpus } from './corpus.js';
import type { Job, Totals } from './handlers.js';
import { countWords, keyRanges, partition, summarize, top, type WordCount } from './words.js';
import type { RangeSummary } from './words.js';

export interface WordcountOptions {
  /** Corpus size in bytes. */
  bytes: number;
  seed: number;
  /** Map tasks (chunks of the corpus). */
  maps: number;
  /** Reduce tasks (key ranges). */
  reduces: number;
  top: number;
  pauseMs?: number;
}

export const DEFAULT_WORDCOUNT: Readonly<WordcountOptions> = Object.freeze({
  bytes: 4 * 2 ** 20,
  seed: 14,
  maps: 32,
  reduces: 8,
  top: 10,
  pauseMs: 0,
});

/** What the single-process count found: the root task must return the same. */
export interface Expected {
  words: number;
  distinct: number;
  top: WordCount[];
  ranges: RangeSummary[];
}

/** Writes the corpus into `dir`; the root task's input and the expected totals. */
export function prepareWordcount(
  dir: string,
  o: WordcountOptions,
): { job: Job; expected: Expected; bytes: number } {
  const text = generateCorpus({ bytes: o.bytes, seed: o.seed });
  const file = join(dir, `corpus-${o.seed}.txt`);
  writeFileSync(file, text, 'latin1');
  const ranges = keyRanges(o.reduces);
  const job: Job = {
    file,
    chunks: chunkBoundaries(text, o.maps),
    ranges,
    top: o.top,
    pauseMs: o.pauseMs ?? 0,
  };
  return { job, expected: countLocally(text, ranges, o.top), bytes: text.length };
}

/** The single-process count, with the same tokenizer and key ranges. */
export function countLocally(text: string, ranges: Job['ranges'], n: number): Expected {
  const counts = countWords(text);
  const parts = partition(counts, ranges);
  const summaries = ranges.map((range, r) => summarize(range, new Map(Object.entries(parts[r]!))));
  return {
    words: summaries.reduce((s, r) => s + r.words, 0),
    distinct: counts.size,
    top: top(counts, n),
    ranges: summaries,
  };
}

/** How the root task's totals differ from the single-process count; empty when they match. */
export function compare(got: Totals, expected: Expected): string[] {
  const out: string[] = [];
  if (got.words !== expected.words) out.push(`words: ${got.words}, expected ${expected.words}`);
  if (got.distinct !== expected.distinct)
    out.push(`distinct words: ${got.distinct}, expected ${expected.distinct}`);
  if (JSON.stringify(got.top) !== JSON.stringify(expected.top))
    out.push(`top words: ${JSON.stringify(got.top)}, expected ${JSON.stringify(expected.top)}`);
  if (got.ranges.length !== expected.ranges.length)
    out.push(`${got.ranges.length} key ranges, expected ${expected.ranges.length}`);
  expected.ranges.forEach((e, i) => {
    const g = got.ranges[i];
    if (!g || g.digest !== e.digest || g.words !== e.words || g.distinct !== e.distinct)
      out.push(
        `key range ${e.range.from}-${e.range.to}: ${g ? `${g.words} words, ${g.distinct} distinct, digest ${g.digest.slice(0, 12)}` : 'missing'}; expected ${e.words}, ${e.distinct}, ${e.digest.slice(0, 12)}`,
      );
  });
  return out;
}
