/** The worker runtime: connect to a coordinator, run handlers, report results. */
export { Worker, type WorkerLifecycle } from './worker.js';
export { loadHandlers } from './load-handlers.js';
export type { TaskContext, SpawnedGroup } from './run.js';
export type { SpawnOptions } from './spawn.js';
export type { AddOptions } from './add.js';
export type { TaskAdded } from './replies.js';
export type { Handler, Logger, LogLevel, WorkerOptions, ResolvedWorkerOptions } from './options.js';
export { DEFAULT_WORKER_OPTIONS } from './options.js';
export type { WorkerEvents, WorkerEvent, Listener } from './events.js';
