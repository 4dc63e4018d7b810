/**
 * Real processes for integration and fault tests: a coordinator and workers
 * started through the `regroup` CLI, their output captured, and every one of
 * them killed at the end (a test fails if it leaves a process running), or
 * at once if the test process is interrupted or loses its parent (cleanup.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trackDir, trackProcess, WATCH_PARENT } from './cleanup.js';

export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

const live = new Set<Proc>();

export class Proc {
  readonly child: ChildProcess;
  readonly out: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  exitCode: number | null | undefined = undefined;

  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string> = {},
  ) {
    this.child = trackProcess(
      spawn(process.execPath, [...WATCH_PARENT, CLI, ...args], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? null : code);
        live.delete(this);
        resolve(code);
      });
    });
    const onLine = (line: string): void => {
      if (line === '') return;
      this.out.push(line);
      if (process.env['REGROUP_TEST_VERBOSE']) process.stderr.write(`[${this.name}] ${line}\n`);
      for (const w of [...this.waiters]) {
        const m = w.re.exec(line);
        if (m) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    };
    // A line may arrive in several chunks: only whole lines are read, per stream.
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let rest = '';
      stream.on('data', (buf: Buffer) => {
        const lines = (rest + buf.toString('utf8')).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) onLine(line);
      });
      stream.on('end', () => onLine(rest));
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first output line (already seen or to come) matching `re`. */
  waitFor(re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    for (const line of this.out) {
      const m = re.exec(line);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `${this.name}: no line matching ${re} within ${timeoutMs} ms; output:\n${this.out.slice(-30).join('\n')}`,
          ),
        );
      }, timeoutMs);
      const done = (m: RegExpMatchArray): void => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push({ re, resolve: done });
    });
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exitCode === undefined) this.child.kill(sig);
  }

  async kill(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Starts a coordinator; port 0 picks a free one (a restart passes the old port so workers and clients find it). */
export async function startServer(
  db: string,
  o: { port?: number; extra?: string[] } = {},
): Promise<{ proc: Proc; url: string; port: number }> {
  const args = [
    'server',
    '--port',
    String(o.port ?? 0),
    '--db',
    db,
    '--log-level',
    'warn',
    ...(o.extra ?? []),
  ];
  const proc = new Proc('coordinator', args);
  const m = await proc.waitFor(/listening on (http:\/\/\S+)/);
  const url = m[1]!;
  return { proc, url, port: Number(new URL(url).port) };
}

export async function startWorker(
  url: string,
  handlers: string,
  name: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<Proc> {
  const proc = new Proc(
    name,
    [
      'worker',
      '--url',
      url,
      '--handlers',
      handlers,
      '--name',
      name,
      '--log-level',
      'warn',
      ...extra,
    ],
    env,
  );
  await proc.waitFor(/joined as (w_\w+)/);
  return proc;
}

/** Kills every process a test started. Call in `after`/`afterEach`. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill()));
}

export function liveProcesses(): number {
  return live.size;
}

/** A fresh folder under the OS's temporary one; removed by `cleanup`, or when the process ends. */
export function tempDir(prefix = 'regroup-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const tracked = trackDir(dir);
  return {
    dir,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      tracked.forget();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value, or fails after timeoutMs with `what`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T> | T,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
