/**
 * The handle ctx.spawn resolves with: the client's Group over the worker's
 * session (group-calls.ts), whose waits give the run's slot back while they
 * wait (docs/design.md, "Waiting frees the slot"). `wait()` and
 * `waitSettled()` are one wait, however many long polls they take;
 * `results()` waits page by page, and its handler runs between pages.
 */
import { Group, type ClientContext, type WaitOptions } from '../client/group.js';
import type { Outcome } from '../client/outcome.js';

/** Runs `wait` with the run's slot given back, and takes a slot again before it returns. */
export type WhileWaiting = <T>(wait: () => Promise<T>) => Promise<T>;

export class SpawnedHandle<R = unknown> extends Group<R> {
  constructor(
    ctx: ClientContext,
    id: string,
    private readonly whileWaiting: WhileWaiting,
  ) {
    super(ctx, id);
  }

  /** As the client's, with the slot given back until the group is done and its outcomes are read. */
  override waitSettled(opts: WaitOptions = {}): Promise<Outcome<R>[]> {
    return this.whileWaiting(() => super.waitSettled(opts));
  }
}

/** A request of the handle that waits for tasks to finish: `results()`'s long poll. */
export function isLongPoll(req: { method: string; path: string }): boolean {
  return req.method === 'GET' && /^\/v1\/groups\/[^/?]+\/finished\?(.*&)?waitMs=/.test(req.path);
}
