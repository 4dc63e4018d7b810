/**
 * Loaded with `node --import` (cleanup.ts's WATCH_PARENT) into the
 * processes tests start (coordinators, workers, clients): the process exits
 * once its parent, the test, is gone, however the test ended. The parent's
 * pid is polled: a process whose parent died is handed to another. The timer
 * is unref'd, so it never keeps a process alive.
 */
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(129);
}, 200).unref();
