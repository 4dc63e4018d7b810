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
import { killAll, liveProcesses, tempDir } from '../src/testing/procs.js';

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

/** The lines of a run log the fixtures append to (one JSON object a line); none when it is not there yet. */
export function readRunLog<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}
