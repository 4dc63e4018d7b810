/** Size limits on everything that arrives. Each refusal names the limit and the flag that raises it. */
export interface Limits {
  /** Largest HTTP request body. `--max-body-bytes`. */
  maxBodyBytes: number;
  /** Most tasks in one submit or add request; the client splits larger groups. `--max-tasks-per-request`. */
  maxTasksPerRequest: number;
  /** Largest task input, as JSON text. `--max-input-bytes`. */
  maxInputBytes: number;
  /** Largest task result or checkpoint, as JSON text. `--max-result-bytes`. */
  maxResultBytes: number;
  /** Largest WebSocket message from a worker. `--max-message-bytes`. */
  maxMessageBytes: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxBodyBytes: 32 * 1024 * 1024,
  maxTasksPerRequest: 20_000,
  maxInputBytes: 1024 * 1024,
  maxResultBytes: 4 * 1024 * 1024,
  maxMessageBytes: 64 * 1024 * 1024,
});

/** Server-sent event streams of the dashboard open at once, per coordinator. */
export const DASHBOARD_MAX_STREAMS = 100;
