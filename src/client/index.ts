/** The regroup client SDK. */
export { Client, type SubmitOptions, type ListGroupsOptions } from './client.js';
export {
  Group,
  OpenGroup,
  type WaitOptions,
  type ResultsOptions,
  type TasksOptions,
  type TasksPage,
  type ChildrenOptions,
  type ChildrenPage,
} from './group.js';
export { GroupFailedError, type Outcome } from './outcome.js';
export { DEFAULT_CLIENT_OPTIONS, type ClientOptions, type RetryInfo } from './options.js';
export { RegroupError, type ErrorCode } from '../core/errors.js';
export type {
  GroupView,
  TaskView,
  WorkerView,
  TaskOptionsInput,
  RetryReply,
  CancelReply,
} from '../protocol/http.js';
export type { TaskError, GroupPolicy, GroupState, TaskState } from '../core/types.js';
