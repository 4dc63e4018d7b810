export { Coordinator, LEADER_HEADER, type CoordinatorLifecycle } from './coordinator.js';
export { type CoordinatorOptions, type Logger, type LogLevel, DEFAULT_PORT } from './options.js';
