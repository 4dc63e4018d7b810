/** What a worker tells its embedder; the same events feed logs and metrics. */
export interface WorkerEvents {
  welcome: { workerId: string; resumed: boolean };
  run: { taskId: number; attempt: number };
  done: { taskId: number; attempt: number; ok: boolean };
  /** The coordinator answered a report: committed (this run's result is the result), already_final or stale. */
  ack: { taskId: number; attempt: number; status: 'committed' | 'already_final' | 'stale' };
  /** The run's handler waits on a group it spawned and gave its slot back. */
  suspended: { taskId: number; attempt: number };
  /** Its wait ended and the coordinator gave it a slot again: the handler goes on. */
  resumed: { taskId: number; attempt: number };
  revoked: { taskId: number; attempt: number; reason: string };
  disconnected: { url: string; code: number; reason: string };
  stopped: Record<string, never>;
}

export type WorkerEvent = keyof WorkerEvents;
export type Listener<E extends WorkerEvent> = (payload: WorkerEvents[E]) => void;

/** A small typed event map. A listener that throws is reported to `onListenerError`, never to the caller. */
export class Events {
  readonly #listeners = new Map<WorkerEvent, Set<(payload: never) => void>>();

  constructor(private readonly onListenerError: (event: WorkerEvent, e: unknown) => void) {}

  on<E extends WorkerEvent>(event: E, fn: Listener<E>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  off<E extends WorkerEvent>(event: E, fn: Listener<E>): void {
    this.#listeners.get(event)?.delete(fn);
  }

  emit<E extends WorkerEvent>(event: E, payload: WorkerEvents[E]): void {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (fn as Listener<E>)(payload);
      } catch (e) {
        this.onListenerError(event, e);
      }
    }
  }
}
