import { RegroupError, isErrorCode } from '../core/errors.js';
import type { Saved } from '../protocol/worker.js';
import { encode, type Encoded } from './wire.js';

interface Pending {
  taskId: number;
  attempt: number;
  seq: number;
  /** The state as JSON text, checked when it was saved. */
  stateJson: string;
  encoded: Encoded;
  /** When it was last sent (performance.now()). */
  sentAt: number;
  resolve: (stateJson: string) => void;
  reject: (e: RegroupError) => void;
}

function key(taskId: number, attempt: number, seq: number): string {
  return `${taskId}:${attempt}:${seq}`;
}

/**
 * Checkpoints sent and not answered yet, keyed by (taskId, attempt, seq).
 * Each waits for its `saved`; they are sent again after a resumed reconnect
 * and rejected when their run or the session is gone.
 */
export class PendingCheckpoints {
  readonly #pending = new Map<string, Pending>();

  /** Registers a checkpoint; the promise gives the saved state's JSON text back. */
  add(
    taskId: number,
    attempt: number,
    seq: number,
    stateJson: string,
  ): {
    encoded: Encoded;
    saved: Promise<string>;
  } {
    // The state is spliced in as checked JSON text so it is stringified once.
    const head = encode({ t: 'checkpoint', taskId, attempt, seq, state: null }).text;
    const text = `${head.slice(0, -'null}'.length)}${stateJson}}`;
    const encoded: Encoded = { text, bytes: Buffer.byteLength(text) };
    const saved = new Promise<string>((resolve, reject) => {
      this.#pending.set(key(taskId, attempt, seq), {
        taskId,
        attempt,
        seq,
        stateJson,
        encoded,
        sentAt: performance.now(),
        resolve,
        reject,
      });
    });
    return { encoded, saved };
  }

  /** Settles the checkpoint `saved` answers; returns false when none was waiting. */
  settle(saved: Saved): boolean {
    const k = key(saved.taskId, saved.attempt, saved.seq);
    const p = this.#pending.get(k);
    if (p === undefined) return false;
    this.#pending.delete(k);
    if (saved.ok) {
      p.resolve(p.stateJson);
    } else {
      const code = isErrorCode(saved.code) ? saved.code : 'stale_attempt';
      p.reject(
        new RegroupError(
          code,
          `the coordinator did not save checkpoint ${saved.seq} of task ${saved.taskId} attempt ${saved.attempt}: ${saved.code ?? 'stale_attempt'}`,
        ),
      );
    }
    return true;
  }

  /** Rejects every checkpoint of one run. */
  rejectRun(taskId: number, attempt: number, e: RegroupError): void {
    for (const [k, p] of this.#pending) {
      if (p.taskId === taskId && p.attempt === attempt) {
        this.#pending.delete(k);
        p.reject(e);
      }
    }
  }

  rejectAll(e: RegroupError): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) p.reject(e);
  }

  /** The messages to send again, in the order they were first sent. */
  messages(): Encoded[] {
    return [...this.#pending.values()].map((p) => p.encoded);
  }

  /** Checkpoints sent `ackTimeoutMs` ago or more with no `saved`, marked sent again now. */
  overdue(now: number, ackTimeoutMs: number): Encoded[] {
    const out: Encoded[] = [];
    for (const p of this.#pending.values()) {
      if (now - p.sentAt < ackTimeoutMs) continue;
      p.sentAt = now;
      out.push(p.encoded);
    }
    return out;
  }

  get size(): number {
    return this.#pending.size;
  }
}
