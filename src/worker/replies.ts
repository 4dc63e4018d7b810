import { RegroupError, isErrorCode } from '../core/errors.js';
import type { Added, Resumed, Saved, Spawned } from '../protocol/worker.js';
import { encode, type Encoded } from './wire.js';

/** What an add resolves with: the tasks first..first+count-1 of the group. */
export interface TaskAdded {
  /** The index of the first task added (with count 0: the group's size when it was made). */
  first: number;
  count: number;
}

type Kind = 'checkpoint' | 'add' | 'spawn' | 'resume';
type Answer = Saved | Added | Spawned | Resumed;

const KIND_OF: Record<Answer['t'], Kind> = {
  saved: 'checkpoint',
  added: 'add',
  spawned: 'spawn',
  resumed: 'resume',
};

interface Pending {
  kind: Kind;
  taskId: number;
  attempt: number;
  seq: number;
  encoded: Encoded;
  /** When it was last sent (performance.now()). */
  sentAt: number;
  resolve: (answer: Answer) => void;
  reject: (e: RegroupError) => void;
}

function key(kind: Kind, taskId: number, attempt: number, seq: number): string {
  return `${kind}:${taskId}:${attempt}:${seq}`;
}

/** A message built around JSON text that was already checked, so the value is stringified once. */
function spliced(head: object, field: string, json: string): Encoded {
  const text = `${JSON.stringify(head).slice(0, -1)},${JSON.stringify(field)}:${json}}`;
  return { text, bytes: Buffer.byteLength(text) };
}

/** The error of a refused checkpoint, add or spawn: `what` (did not ...), then the coordinator's code, or its message. */
function refusal(what: string, m: Answer): RegroupError {
  const code = isErrorCode(m.code) ? m.code : 'stale_attempt';
  const why = ('message' in m ? m.message : undefined) ?? m.code ?? 'stale_attempt';
  return new RegroupError(
    code,
    `the coordinator ${what} of task ${m.taskId} attempt ${m.attempt}: ${why}`,
  );
}

/**
 * The messages of runs that wait for an answer: checkpoints (answered
 * `saved`), adds (answered `added`), spawns (answered `spawned`) and the
 * resumes of suspended runs (answered `resumed`), keyed by
 * kind and (taskId, attempt, seq). Each is sent again after a resumed
 * reconnect and when its answer is overdue (a checkpoint repeated is written
 * again, an add or a spawn repeated is answered by its key), and rejected
 * when its run or the session is gone.
 */
export class PendingReplies {
  readonly #pending = new Map<string, Pending>();

  /** A checkpoint to send; resolves with the saved state's JSON text. */
  checkpoint(
    taskId: number,
    attempt: number,
    seq: number,
    stateJson: string,
  ): { encoded: Encoded; saved: Promise<string> } {
    const head = { t: 'checkpoint', taskId, attempt, seq };
    const encoded = spliced(head, 'state', stateJson);
    const saved = this.#wait('checkpoint', head, encoded).then((m) => {
      if (!m.ok) throw refusal(`did not save checkpoint ${seq}`, m);
      return stateJson;
    });
    return { encoded, saved };
  }

  /** An add to send (ctx.add); resolves with the indexes the coordinator committed. */
  add(
    ref: { taskId: number; attempt: number; seq: number; key: string },
    inputsJson: string,
  ): { encoded: Encoded; added: Promise<TaskAdded> } {
    const head = { t: 'add', ...ref };
    const encoded = spliced(head, 'inputs', inputsJson);
    const added = this.#wait('add', head, encoded).then((m) => {
      const a = m as Added;
      if (!a.ok || a.first === undefined || a.count === undefined)
        throw refusal(`did not make the add ${JSON.stringify(ref.key)}`, a);
      return { first: a.first, count: a.count };
    });
    return { encoded, added };
  }

  /** A spawn to send (ctx.spawn); resolves with the child group's id once the coordinator committed it. */
  spawn(
    ref: { taskId: number; attempt: number; seq: number; key: string },
    head: object,
    inputsJson: string,
  ): { encoded: Encoded; spawned: Promise<string> } {
    const encoded = spliced({ t: 'spawn', ...ref, ...head }, 'inputs', inputsJson);
    const spawned = this.#wait('spawn', ref, encoded).then((m) => {
      const a = m as Spawned;
      if (!a.ok || a.groupId === undefined)
        throw refusal(`did not make the spawn ${JSON.stringify(ref.key)}`, a);
      return a.groupId;
    });
    return { encoded, spawned };
  }

  /** A suspended run asks for its slot back; resolves once the coordinator granted one. */
  resume(ref: { taskId: number; attempt: number; seq: number }): {
    encoded: Encoded;
    resumed: Promise<void>;
  } {
    const encoded = encode({ t: 'resume', ...ref });
    const resumed = this.#wait('resume', ref, encoded).then((m) => {
      if (!m.ok) throw refusal('did not give a slot back to the waiting handler', m);
    });
    return { encoded, resumed };
  }

  #wait(
    kind: Kind,
    ref: { taskId: number; attempt: number; seq: number },
    encoded: Encoded,
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.#pending.set(key(kind, ref.taskId, ref.attempt, ref.seq), {
        kind,
        ...ref,
        encoded,
        sentAt: performance.now(),
        resolve,
        reject,
      });
    });
  }

  /** Settles what `saved`, `added`, `spawned` or `resumed` answers; returns false when nothing was waiting for it. */
  settle(m: Answer): boolean {
    const k = key(KIND_OF[m.t], m.taskId, m.attempt, m.seq);
    const p = this.#pending.get(k);
    if (p === undefined) return false;
    this.#pending.delete(k);
    p.resolve(m);
    return true;
  }

  /** Rejects everything one run waits for. */
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

  /** Messages sent `ackTimeoutMs` ago or more with no answer, marked sent again now. */
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
