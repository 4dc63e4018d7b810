/**
 * Counting, shared by the map and reduce handlers and by the single-process
 * count the result is checked against: one tokenizer, one way to split words
 * into key ranges, one digest of a range's counts.
 */
import { createHash } from 'node:crypto';

/** A key range: the words whose first letter is from..to (inclusive). */
export interface KeyRange {
  from: string;
  to: string;
}

/** Word -> count, as JSON carries it. */
export type Counts = Record<string, number>;

/** `count` ranges of first letters a..z, as even as 26 letters allow. */
export function keyRanges(count: number): KeyRange[] {
  const a = 'a'.charCodeAt(0);
  const out: KeyRange[] = [];
  for (let r = 0; r < count; r++) {
    const from = Math.floor((r * 26) / count);
    const to = Math.floor(((r + 1) * 26) / count) - 1;
    out.push({ from: String.fromCharCode(a + from), to: String.fromCharCode(a + to) });
  }
  return out;
}

/** The index of the range that holds `word` (words are a..z only). */
export function rangeOf(word: string, ranges: readonly KeyRange[]): number {
  const c = word[0]!;
  const i = ranges.findIndex((r) => c >= r.from && c <= r.to);
  if (i < 0) throw new Error(`no key range holds "${word}"`);
  return i;
}

/** Counts the words of `text`: lower-cased runs of the letters a..z. */
export function countWords(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const w of text.toLowerCase().match(/[a-z]+/g) ?? [])
    counts.set(w, (counts.get(w) ?? 0) + 1);
  return counts;
}

/** The counts split by key range, each range's words as a plain object (what a map task returns). */
export function partition(counts: Map<string, number>, ranges: readonly KeyRange[]): Counts[] {
  const parts: Counts[] = ranges.map(() => ({}));
  for (const [w, n] of counts) parts[rangeOf(w, ranges)]![w] = n;
  return parts;
}

/** Adds up the counts of several parts (what a reduce task does). */
export function mergeParts(parts: readonly Counts[]): Map<string, number> {
  const total = new Map<string, number>();
  for (const part of parts)
    for (const [w, n] of Object.entries(part)) total.set(w, (total.get(w) ?? 0) + n);
  return total;
}

export interface WordCount {
  word: string;
  count: number;
}

/** The `n` most common words, ties by word. */
export function top(counts: Iterable<[string, number]>, n: number): WordCount[] {
  return [...counts]
    .map(([word, count]) => ({ word, count }))
    .sort((x, y) => y.count - x.count || (x.word < y.word ? -1 : x.word > y.word ? 1 : 0))
    .slice(0, n);
}

/** What one key range adds up to: a digest of every word's count, and totals. */
export interface RangeSummary {
  range: KeyRange;
  /** Words counted (with repeats). */
  words: number;
  /** Different words. */
  distinct: number;
  /** sha256 of the sorted `word count` lines: equal digests, equal counts. */
  digest: string;
}

export function summarize(range: KeyRange, counts: Map<string, number>): RangeSummary {
  const sorted = [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash('sha256');
  let words = 0;
  for (const [w, n] of sorted) {
    hash.update(`${w} ${n}\n`);
    words += n;
  }
  return { range, words, distinct: sorted.length, digest: hash.digest('hex') };
}
