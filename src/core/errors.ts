/**
 * The one error class of regroup. Every error that crosses a boundary (HTTP,
 * WebSocket, CLI exit) carries a stable `code` from this table. The transport
 * maps codes to HTTP statuses; the wire shape is `{ error: { code, message } }`.
 * The table is documented in docs/errors.md; keep the two in step.
 */
export const ERROR_CODES = {
  // Client mistakes (4xx). Nothing changed on the coordinator.
  bad_request: { status: 400, retryable: false },
  invalid_json: { status: 400, retryable: false },
  validation_failed: { status: 400, retryable: false },
  unsupported_media_type: { status: 415, retryable: false },
  body_too_large: { status: 413, retryable: false },
  too_many_tasks: { status: 413, retryable: false },
  input_too_large: { status: 413, retryable: false },
  unauthorized: { status: 401, retryable: false },
  not_found: { status: 404, retryable: false },
  group_not_found: { status: 404, retryable: false },
  method_not_allowed: { status: 405, retryable: false },
  group_sealed: { status: 409, retryable: false },
  group_canceled: { status: 409, retryable: false },
  idempotency_conflict: { status: 409, retryable: false },
  offset_mismatch: { status: 409, retryable: false },
  too_deep: { status: 400, retryable: false },
  forbidden_origin: { status: 403, retryable: false },
  forbidden_host: { status: 403, retryable: false },
  request_timeout: { status: 408, retryable: false },
  too_many_requests: { status: 429, retryable: true },
  // Coordinator-side conditions (5xx); a client may retry.
  unavailable: { status: 503, retryable: true },
  shutting_down: { status: 503, retryable: true },
  not_leader: { status: 503, retryable: true },
  storage_full: { status: 507, retryable: true },
  internal: { status: 500, retryable: false },
  // Worker protocol and task outcomes (not HTTP, but the same table).
  protocol_error: { status: 400, retryable: false },
  session_unknown: { status: 409, retryable: false },
  stale_attempt: { status: 409, retryable: false },
  handler_not_found: { status: 400, retryable: false },
  handler_error: { status: 500, retryable: true },
  timeout: { status: 504, retryable: true },
  poison: { status: 500, retryable: false },
  canceled: { status: 409, retryable: false },
  group_failed: { status: 500, retryable: false },
  connection_failed: { status: 503, retryable: true },
  closed: { status: 503, retryable: false },
  // Start-up refusals of `regroup server` / Coordinator.start (not HTTP).
  port_in_use: { status: 500, retryable: false },
  listen_failed: { status: 500, retryable: false },
  store_locked: { status: 500, retryable: false },
  store_open_failed: { status: 500, retryable: false },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, x);
}

export interface WireError {
  code: string;
  message: string;
}

export class RegroupError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly status: number;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegroupError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = options?.retryable ?? ERROR_CODES[code].retryable;
  }

  toWire(): { error: WireError } {
    return { error: { code: this.code, message: this.message } };
  }

  /** Rebuilds an error received on the wire; unknown codes become `internal`. */
  static fromWire(body: unknown, fallback = 'unexpected reply'): RegroupError {
    const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const code = isErrorCode(e?.code) ? e.code : 'internal';
    const message = typeof e?.message === 'string' ? e.message : fallback;
    return new RegroupError(code, message);
  }
}

/**
 * Thrown by a handler to fail its task at once, without retries.
 * `throw new PermanentError('input is not a number')`.
 */
export class PermanentError extends Error {
  readonly permanent = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PermanentError';
  }
}
