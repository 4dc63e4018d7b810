/**
 * What every test file that starts real processes sets up the same way: a
 * temporary folder, and at the end of the file every process killed, the
 * folder removed, and a check that nothing was left running.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client/index.js';
import { join } from 'node:path';
import { killAll, liveProcesses, startServer, startWorker, tempDir } from '../src/testing/procs.js';

/** A file under test/fixtures, from the compiled test (dist/test) as from the source. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
}

/**
 * The file's temporary folder (`dir`). `first`: what the file closes before
 * the processes are killed (its clients, children it started itself).
 */
export function realProcesses(prefix: string, first?: () => Promise<void> | void): { dir: string } {
  const tmp = tempDir(prefix);
  after(async () => {
    await first?.();
    await killAll();
    tmp.cleanup();
    assert.equal(liveProcesses(), 0, 'no process left running');
  });
  return tmp;
}

/**
 * realProcesses, and `client(url)`: a Client that is closed at the end of
 * the file, before the processes are killed.
 */
export function realProcessesWithClients(prefix: string): {
  dir: string;
  client: (url: string) => Client;
} {
  const clients: Client[] = [];
  const tmp = realProcesses(prefix, () => {
    for (const c of clients) c.close();
  });
  const client = (url: string): Client => {
    const c = new Client({ url });
    clients.push(c);
    return c;
  };
  return { dir: tmp.dir, client };
}

/**
 * A coordinator on `<name>.db` in `dir` (with `serverExtra` flags) and a
 * worker of `handlers` for each of `workers`, of `concurrency` slots, every
 * run logged to `<name>-runs.jsonl` (REGROUP_RUN_LOG, read by readRunLog).
 */
export async function serverAndWorkers(
  dir: string,
  name: string,
  handlers: string,
  o: { workers: string[]; concurrency: number; serverExtra?: string[] },
): Promise<{ url: string; runLog: string }> {
  const runLog = join(dir, `${name}-runs.jsonl`);
  const { url } = await startServer(join(dir, `${name}.db`), { extra: o.serverExtra ?? [] });
  const env = { REGROUP_RUN_LOG: runLog };
  for (const w of o.workers)
    await startWorker(url, handlers, w, ['--concurrency', String(o.concurrency)], env);
  return { url, runLog };
}

/** The lines of a run log the fixtures append to (one JSON object a line); none when it is not there yet. */
export function readRunLog<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}
