#!/usr/bin/env node
// Prints the tables of a results file again: node report.mjs results/<file>.json [--markdown]
import { readFileSync } from 'node:fs';
import { renderMarkdown, renderText } from './lib/report.mjs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  console.error('usage: node report.mjs <results.json> [--markdown]');
  process.exit(2);
}
const results = JSON.parse(readFileSync(file, 'utf8'));
if (args.includes('--markdown')) {
  const m = results.machine;
  const v = results.versions;
  const peers = Object.entries(v.peers)
    .filter(([, x]) => x)
    .map(([k, x]) => `${k} ${x}`)
    .join(', ');
  process.stdout.write(
    [
      `- command: \`${results.npmScript ? `npm run ${results.npmScript}` : results.command}\` (${results.command})`,
      `- when: ${results.startedAt} to ${results.finishedAt}`,
      `- machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}`,
      `- load average (1, 5, 15 min) at the start ${results.loadavgStart.join(', ')}, at the end ${results.loadavgEnd?.join(', ')}`,
      `- regroup ${v.regroup.version} at ${v.regroup.commit}${v.regroup.srcModifiedSinceCommit ? ' (src/ had uncommitted changes)' : ''}, better-sqlite3 ${v.regroup.betterSqlite3}, pg ${v.regroup.pg}`,
      `- peers: ${peers}`,
      `- servers: Redis ${v.redis ?? '(not used)'}; ${v.postgres ?? 'PostgreSQL (not used)'}`,
      '',
      renderMarkdown(results),
    ].join('\n'),
  );
} else {
  process.stdout.write(renderText(results));
}
