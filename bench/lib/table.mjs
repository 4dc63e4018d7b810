// Plain-text tables for the terminal and Markdown tables for the docs.

export function textTable(header, rows) {
  const all = [header, ...rows].map((r) =>
    r.map((c) => (c === null || c === undefined ? '' : String(c))),
  );
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [
    line(all[0]),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...all.slice(1).map(line),
  ].join('\n');
}

export function markdownTable(header, rows) {
  const esc = (c) => (c === null || c === undefined ? '' : String(c).replace(/\|/g, '\\|'));
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** 12345.6 -> "12,346"; small numbers keep some digits. */
export function num(x, digits) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}
