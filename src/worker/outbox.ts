import type { Fail, Release, Result, RunRef } from '../protocol/worker.js';
import { encode, type Encoded } from './wire.js';

/** What a run reports at its end; each waits in the outbox until acked. */
export type Outcome = Result | Fail | Release;

export interface OutboxEntry {
  ref: RunRef;
  kind: Outcome['t'];
  /** Encoded once, when the run ended: later changes to the value cannot leak in. */
  encoded: Encoded;
  /** When it was last sent (performance.now()); sent again when no ack came within the ack timeout. */
  sentAt: number;
}

export function runKey(taskId: number, attempt: number): string {
  return `${taskId}:${attempt}`;
}

/**
 * Results, failures and releases the coordinator has not acknowledged yet,
 * keyed by the fencing token (taskId, attempt), in the order they were put.
 * An entry leaves on an ack (any status), on a revoke of its run, or when the
 * session is lost; it is sent again after every resumed reconnect, and
 * when no ack came within the ack timeout (see overdue).
 */
export class Outbox {
  readonly #entries = new Map<string, OutboxEntry>();
  #onEmpty: (() => void)[] = [];

  /** Puts `outcome`, encoded now, or a result already encoded (see encodeResult). */
  put(outcome: Outcome | { ref: RunRef; kind: 'result'; encoded: Encoded }): OutboxEntry {
    const entry: OutboxEntry =
      't' in outcome
        ? {
            ref: { taskId: outcome.taskId, attempt: outcome.attempt },
            kind: outcome.t,
            encoded: encode(outcome),
            sentAt: performance.now(),
          }
        : {
            ref: { ...outcome.ref },
            kind: outcome.kind,
            encoded: outcome.encoded,
            sentAt: performance.now(),
          };
    const key = runKey(entry.ref.taskId, entry.ref.attempt);
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry;
  }

  has(taskId: number, attempt: number): boolean {
    return this.#entries.has(runKey(taskId, attempt));
  }

  /** Drops the entry of (taskId, attempt); returns whether there was one. */
  remove(taskId: number, attempt: number): boolean {
    const had = this.#entries.delete(runKey(taskId, attempt));
    if (had) this.#notifyIfEmpty();
    return had;
  }

  clear(): void {
    this.#entries.clear();
    this.#notifyIfEmpty();
  }

  get size(): number {
    return this.#entries.size;
  }

  entries(): OutboxEntry[] {
    return [...this.#entries.values()];
  }

  /**
   * Entries sent `ackTimeoutMs` ago or more without an answer, marked sent
   * again now. The frame that carried them may not have been readable: the
   * coordinator fences a duplicate (already_final or stale) and acks it.
   */
  overdue(now: number, ackTimeoutMs: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (const e of this.#entries.values()) {
      if (now - e.sentAt < ackTimeoutMs) continue;
      e.sentAt = now;
      out.push(e);
    }
    return out;
  }

  refs(): RunRef[] {
    return this.entries().map((e) => ({ ...e.ref }));
  }

  /** Resolves once the outbox is empty (at once when it already is). */
  whenEmpty(): Promise<void> {
    if (this.#entries.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#onEmpty.push(resolve));
  }

  #notifyIfEmpty(): void {
    if (this.#entries.size > 0) return;
    const waiting = this.#onEmpty;
    this.#onEmpty = [];
    for (const resolve of waiting) resolve();
  }
}
