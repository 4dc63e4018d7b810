/**
 * The processes of a fault run as the nemesis sees them: a name, the child
 * process (or null while it is down), and whether its exit was ours.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export interface Member {
  name: string;
  child: ChildProcess | null;
  /** Exit is expected (we killed it). */
  stopped: boolean;
}

export function isUp(m: Member): boolean {
  const c = m.child;
  return c !== null && c.exitCode === null && c.signalCode === null;
}

/** SIGKILL (after a SIGCONT, in case it is stopped) and wait for the exit. Returns the pid killed. */
export async function killMember(m: Member): Promise<number | undefined> {
  const c = m.child;
  if (!c || !isUp(m)) return undefined;
  m.stopped = true;
  const pid = c.pid;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGCONT');
  c.kill('SIGKILL');
  await exited;
  return pid;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves when the child prints a line matching `re` on stdout; rejects on exit or timeout. */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new Error(`no line matching ${re} within ${timeoutMs} ms; output: ${buf.slice(-2000)}`),
      );
    }, timeoutMs);
    const onOut = (d: Buffer): void => {
      buf += d.toString();
      if (re.test(buf)) {
        done();
        resolve();
      }
    };
    const onErr = (d: Buffer): void => {
      buf += d.toString();
    };
    const onExit = (code: number | null): void => {
      done();
      reject(new Error(`exited with ${code} before ${re}; output: ${buf.slice(-2000)}`));
    };
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
