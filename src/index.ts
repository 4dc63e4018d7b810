/** The public API of regroup. */
export { Client, type SubmitOptions, type ClientOptions, type RetryInfo } from './client/index.js';
export { Group, OpenGroup } from './client/group.js';
export { GroupFailedError, type Outcome } from './client/outcome.js';
export {
  Worker,
  loadHandlers,
  type Handler,
  type TaskContext,
  type WorkerOptions,
  type AddOptions,
  type TaskAdded,
  type SpawnOptions,
  type SpawnedGroup,
} from './worker/index.js';
export { Coordinator, type CoordinatorOptions } from './coordinator/index.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite.js';
export { PostgresStore, type PostgresStoreOptions } from './store/postgres.js';
export { PostgresLeadership, type PostgresLeadershipOptions } from './store/postgres-leader.js';
export { applicationNameFor } from './store/postgres-keys.js';
export type { Store } from './store/store.js';
export type { Leadership, LeaderState, Role } from './store/leadership.js';
export { RegroupError, PermanentError, ERROR_CODES, type ErrorCode } from './core/errors.js';
export type {
  TaskError,
  TaskOptions,
  GroupPolicy,
  TaskState,
  GroupState,
  Json,
} from './core/types.js';
export type { GroupView, TaskView, WorkerView, EventView } from './protocol/http.js';
