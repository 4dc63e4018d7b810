// Child processes of the benchmark: every one is registered here and killed at
// the end, on a signal, on an uncaught error and on a time-out.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

const live = new Set();

/** Kills every child still running (SIGKILL by default). Synchronous: safe in 'exit'. */
export function killAll(signal = 'SIGKILL') {
  for (const p of live) {
    try {
      p.child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** How many children are still running. */
export function liveCount() {
  return live.size;
}

let installed = false;
/** Kills the children when this process ends, however it ends. */
export function installExitHandlers(onSignal) {
  if (installed) return;
  installed = true;
  process.on('exit', () => killAll());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      killAll();
      Promise.resolve(onSignal?.(sig)).finally(() =>
        process.exit(128 + (sig === 'SIGINT' ? 2 : 15)),
      );
    });
  }
}

/**
 * Starts a child. Its stdout and stderr are drained line by line into a log
 * file (when given) and a short tail kept for error messages.
 * `ipc: true` opens a channel for process.send in the child.
 */
export function startProcess({
  cmd = process.execPath,
  args,
  label,
  logFile,
  ipc = false,
  env,
  cwd,
}) {
  const child = spawn(cmd, args, {
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    cwd,
  });
  const log = logFile ? createWriteStream(logFile, { flags: 'a' }) : null;
  const tail = [];
  const recent = []; // the last lines of stdout, for waitForLine
  const lineListeners = new Set();
  const messageListeners = new Set();
  let exitInfo = null;
  const h = {
    label,
    child,
    pid: child.pid,
    /** Resolves with { code, signal } when the child has exited. */
    exited: null,
    onLine(fn) {
      lineListeners.add(fn);
      return () => lineListeners.delete(fn);
    },
    onMessage(fn) {
      messageListeners.add(fn);
      return () => messageListeners.delete(fn);
    },
    send(msg) {
      if (child.connected) child.send(msg);
    },
    kill(signal = 'SIGKILL') {
      try {
        child.kill(signal);
      } catch {
        // gone
      }
    },
    get alive() {
      return exitInfo === null;
    },
    tail() {
      return tail.join('\n');
    },
    /** Waits for a line of output matching `re` (the recent lines count too); rejects on exit or after timeoutMs. */
    waitForLine(re, timeoutMs, what = String(re)) {
      for (const line of recent) {
        const m = re.exec(line);
        if (m) return Promise.resolve(m);
      }
      return waitFor(h.onLine, (line) => re.exec(line) ?? NO_MATCH, timeoutMs, what);
    },
    /** Waits for an IPC message for which `pred` is true. */
    waitForMessage(pred, timeoutMs, what = 'message') {
      return waitFor(h.onMessage, (m) => (pred(m) ? m : NO_MATCH), timeoutMs, what);
    },
  };
  const exitListeners = new Set();
  function onExit(fn) {
    exitListeners.add(fn);
    return () => exitListeners.delete(fn);
  }
  /**
   * Resolves with the first value `match` gives (not NO_MATCH) for what
   * `subscribe` delivers; rejects when the child exits or after timeoutMs.
   */
  function waitFor(subscribe, match, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      if (exitInfo) return reject(exitedError(h, exitInfo, what));
      const timer = setTimeout(() => {
        off();
        offExit();
        reject(new Error(`${label}: no ${what} within ${timeoutMs} ms; last output:\n${h.tail()}`));
      }, timeoutMs);
      const off = subscribe((x) => {
        const m = match(x);
        if (m === NO_MATCH) return;
        clearTimeout(timer);
        off();
        offExit();
        resolve(m);
      });
      const offExit = onExit((info) => {
        clearTimeout(timer);
        off();
        reject(exitedError(h, info, what));
      });
    });
  }
  h.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(h);
      for (const fn of exitListeners) fn(exitInfo);
      resolve(exitInfo);
    });
  });
  child.on('error', (e) => {
    tail.push(`spawn error: ${e.message}`);
    if (exitInfo === null) {
      exitInfo = { code: null, signal: null, error: e.message };
      live.delete(h);
      for (const fn of exitListeners) fn(exitInfo);
    }
  });
  child.on('message', (m) => {
    for (const fn of messageListeners) fn(m);
  });
  for (const [stream, tag] of [
    [child.stdout, ''],
    [child.stderr, 'stderr: '],
  ]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log?.write(tag + line + '\n');
        tail.push(tag + line);
        if (tail.length > 40) tail.shift();
        if (!tag) {
          recent.push(line);
          if (recent.length > 20) recent.shift();
        }
        for (const fn of lineListeners) fn(line);
      }
    });
  }
  // 'close' comes after the output streams are drained ('exit' may come before).
  child.on('close', () => log?.end());
  log?.on('error', () => {});
  live.add(h);
  return h;
}

const NO_MATCH = Symbol('no match');

function exitedError(h, info, what) {
  const how = info.error ?? (info.signal ? `signal ${info.signal}` : `code ${info.code}`);
  return new Error(`${h.label}: exited (${how}) before ${what}; last output:\n${h.tail()}`);
}

/** Kills a child and waits for it to be gone (at most timeoutMs). */
export async function stopProcess(h, signal = 'SIGKILL', timeoutMs = 5000) {
  if (!h || !h.alive) return;
  h.kill(signal);
  const t = new Promise((r) => setTimeout(r, timeoutMs).unref());
  await Promise.race([h.exited, t]);
  if (h.alive) {
    h.kill('SIGKILL');
    await Promise.race([h.exited, new Promise((r) => setTimeout(r, 2000).unref())]);
  }
}

/**
 * Starts a peer's worker process (`script` in bench/workers, given its
 * config as JSON), adds it to `workers`, and resolves once it says ready.
 */
export async function startPeerWorker({ script, cfg, label, logFile, workers }) {
  const w = startProcess({ args: [script, JSON.stringify(cfg)], label, logFile, ipc: true });
  workers.add(w);
  await w.waitForMessage((m) => m?.ev === 'ready', 30_000, 'ready');
  return w;
}
