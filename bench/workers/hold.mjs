// The `hold` task of the fail-over scenario, shared by every system's worker:
// it tells the benchmark (over the IPC channel) that it started, then holds its
// slot until the benchmark releases it (or the run is aborted).
const waiting = new Map();

process.on('message', (m) => {
  if (m && typeof m === 'object' && typeof m.release === 'string') {
    const fn = waiting.get(m.release);
    if (fn) fn();
    else released.add(m.release);
  }
});
const released = new Set();

/** Reports the start of one attempt of `key`, then resolves when released. */
export function hold(key, attempt, signal) {
  process.send?.({ ev: 'start', key, attempt, pid: process.pid, at: Date.now() });
  return new Promise((resolve, reject) => {
    if (released.delete(key)) return resolve({ key });
    waiting.set(key, () => {
      waiting.delete(key);
      resolve({ key });
    });
    signal?.addEventListener('abort', () => {
      waiting.delete(key);
      reject(signal.reason ?? new Error('aborted'));
    });
  });
}
