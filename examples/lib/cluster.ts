/**
 * A coordinator on a temporary SQLite file and a few worker processes, all
 * started through the built CLI (`regroup server`, `regroup worker`) as real
 * processes, and all stopped by `close()` (or when this process ends).
 */
import { join } from 'node:path';
import { Client } from '../../src/index.js';
import { killAll, startServer, startWorker, tempDir, type Proc } from '../../src/testing/procs.js';

export interface ClusterOptions {
  /** The handler module the workers load. */
  handlers: string;
  workers: number;
  /** Slots per worker (`regroup worker --concurrency`). */
  slots: number;
  /** Extra `regroup server` flags. */
  serverArgs?: string[];
}

export interface Cluster {
  url: string;
  dir: string;
  client: Client;
  coordinator: Proc;
  workers: Proc[];
  /** One more worker like the others. */
  addWorker(): Promise<Proc>;
  close(): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const tmp = tempDir('regroup-example-');
  const workers: Proc[] = [];
  let client: Client | null = null;
  const close = async (): Promise<void> => {
    client?.close();
    await killAll();
    tmp.cleanup();
  };
  try {
    const server = await startServer(join(tmp.dir, 'regroup.db'), { extra: o.serverArgs ?? [] });
    const addWorker = async (): Promise<Proc> => {
      const name = `w${workers.length + 1}`;
      const w = await startWorker(server.url, o.handlers, name, ['--concurrency', String(o.slots)]);
      workers.push(w);
      return w;
    };
    for (let i = 0; i < o.workers; i++) await addWorker();
    client = new Client({ url: server.url });
    return {
      url: server.url,
      dir: tmp.dir,
      client,
      coordinator: server.proc,
      workers,
      addWorker,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** `--name value` and `--name=value` flags of a small example program, as numbers. */
export function numberFlags<T extends object>(argv: string[], defaults: T): T {
  const out = { ...defaults } as Record<string, unknown>;
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]!);
    const key = m?.[1]?.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!m || !key || !(key in out)) throw new Error(`unknown option ${argv[i]}`);
    const value = Number(m[2] ?? argv[++i]);
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${m[1]} takes a number`);
    out[key] = value;
  }
  return out as T;
}
