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
  /**
   * Deepest nesting of arrays and objects in a task input, result or
   * checkpoint, the value itself being level 1 (`[[1]]` is 2 levels; a
   * number is 0). `--max-json-depth`.
   *
   * 64 is far deeper than real data goes (configuration files, API replies
   * and ASTs of ordinary code stay under 20 or so), and far from where
   * recursive code breaks: JSON.stringify and structuredClone overflow Node
   * 20's default stack between 3,000 and 5,000 levels, and a handler's own
   * recursive walk has its own frames to pay for. A value deeper than that
   * is almost always a bug or an attack. Each refusal (`too_deep`) names
   * the limit.
   */
  maxDepth: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxBodyBytes: 32 * 1024 * 1024,
  maxTasksPerRequest: 20_000,
  maxInputBytes: 1024 * 1024,
  maxResultBytes: 4 * 1024 * 1024,
  maxMessageBytes: 64 * 1024 * 1024,
  maxDepth: 64,
});

/** Server-sent event streams of the dashboard open at once, per coordinator. */
export const DASHBOARD_MAX_STREAMS = 100;
/** Of those, the last ones are kept for requests that carry the client token. */
export const DASHBOARD_RESERVED_STREAMS = 20;

/**
 * Most bytes of task values and errors (their JSON text, UTF-8) in one reply
 * of `/tasks` or `/finished`, and in the tasks `/wait` inlines: a page stops
 * before the task that would pass it, and always holds at least one task, so
 * a reply carries at most max(TASK_PAGE_BYTES, maxResultBytes) of results
 * (docs/protocol.md, "Paging by bytes").
 */
export const TASK_PAGE_BYTES = 8 * 1024 * 1024;
