/**
 * The word count's text, made up but reproducible: sentences drawn from a
 * fixed vocabulary by a seeded PRNG, word ranks following a Zipf-like law
 * (the k-th most common word about 1/k^1.07 as often as the first, as in
 * English prose). The same seed and size give the same bytes on every
 * machine, so a run needs no download and its counts can be checked.
 */

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The most common English words, most common first: the head of the distribution.
const COMMON = `the of and to a in is it you that he was for on are with as i his they be at
one have this from or had by hot word but what some we can out other were all there when up use
your how said an each she which do their time if will way about many then them write would like so
these her long make thing see him two has look more day could go come did number sound no most
people my over know water than call first who may down side been now find any new work part take
get place made live where after back little only round man year came show every good me give our
under name very through just form sentence great think say help low line differ turn cause much mean
before move right boy old too same tell does set three want air well also play small end put home
read hand port large spell add even land here must big high such follow act why ask men change went
light kind off need house picture try us again animal point mother world near build self earth
father head stand own page should country found answer school grow study still learn plant cover
food sun four between state keep eye never last let thought city tree cross farm hard start might
story saw far sea draw left late run while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often
letter until mile river car feet care second book carry took science eat room friend began idea
fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual
young ready above ever red list though feel talk bird soon body dog family direct pose leave song
measure door product black short numeral class wind question happen complete ship area half rock
order fire south problem piece told knew pass since top whole king space heard best hour better true
during hundred five remember step early hold west ground interest reach fast verb sing listen six
table travel less morning ten simple several vowel toward war lay against pattern slow center love
person money serve appear road map rain rule govern pull cold notice voice unit power town fine
certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct able
pound done beauty drive stood contain front teach week final gave green quick develop ocean warm
free minute strong special mind behind clear tail produce fact street inch multiply nothing course
stay wheel full force blue object decide surface deep moon island foot system busy test record
boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate miss
brought heat snow tire bring yes distant fill east paint language among`.split(/\s+/);

const ONSETS = ['b', 'br', 'c', 'ch', 'd', 'f', 'g', 'gl', 'h', 'j', 'k', 'l', 'm', 'n', 'p', 'pr'];
const MORE_ONSETS = ['qu', 'r', 's', 'sh', 'st', 't', 'th', 'tr', 'v', 'w', 'y', 'z', ''];
const NUCLEI = ['a', 'e', 'i', 'o', 'u', 'ai', 'ea', 'ou', 'y'];
const CODAS = ['', '', 'n', 'r', 's', 'l', 'nd', 'st', 'x', 'm', 'ck'];

/**
 * The vocabulary, most common first: the common words above, then made-up
 * words of two to four syllables (a long tail of rare words, as real text
 * has), the same for every corpus.
 */
export function vocabulary(size = 6000): string[] {
  const words = [...new Set(COMMON)];
  const seen = new Set(words);
  const random = prng(0x5eed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const onsets = [...ONSETS, ...MORE_ONSETS];
  while (words.length < size) {
    const syllables = 2 + Math.floor(random() * 3);
    let w = '';
    for (let s = 0; s < syllables; s++) w += pick(onsets) + pick(NUCLEI) + pick(CODAS);
    if (!seen.has(w)) {
      seen.add(w);
      words.push(w);
    }
  }
  return words;
}

/** Draws ranks 0..n-1 with P(k) proportional to 1 / (k + 1)^s. */
export function zipf(n: number, s: number, random: () => number): () => number {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, s);
    cumulative[k] = total;
  }
  return () => {
    const x = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface CorpusOptions {
  /** Size in bytes (the text stops at the first paragraph end past it). */
  bytes: number;
  seed: number;
}

/**
 * Paragraphs of sentences: a capital first word, commas now and then, a full
 * stop, so that the counter has something to strip. ASCII only, so a byte
 * offset is a character offset.
 */
export function generateCorpus(o: CorpusOptions): string {
  const words = vocabulary();
  const random = prng(o.seed);
  const rank = zipf(words.length, 1.07, random);
  const parts: string[] = [];
  let size = 0;
  while (size < o.bytes) {
    const sentences = 3 + Math.floor(random() * 5);
    let paragraph = '';
    for (let s = 0; s < sentences; s++) {
      const length = 5 + Math.floor(random() * 14);
      const sentence: string[] = [];
      for (let i = 0; i < length; i++) {
        let w = words[rank()]!;
        if (i === 0) w = w[0]!.toUpperCase() + w.slice(1);
        if (i < length - 1 && random() < 0.08) w += ',';
        sentence.push(w);
      }
      paragraph += (s > 0 ? ' ' : '') + sentence.join(' ') + '.';
    }
    parts.push(paragraph + '\n\n');
    size += paragraph.length + 2;
  }
  return parts.join('');
}

/** [start, end) byte ranges of about `count` equal chunks, each cut at whitespace so that no word is split. */
export function chunkBoundaries(text: string, count: number): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let start = 0;
  for (let i = 1; i <= count && start < text.length; i++) {
    let end = i === count ? text.length : Math.floor((text.length * i) / count);
    while (end < text.length && !/\s/.test(text[end]!)) end++;
    if (end > start) out.push({ start, end });
    start = end;
  }
  return out;
}
