/**
 * The engine's scheduling against a store whose commits take as long as a
 * test says (a gate), as PostgreSQL's do: events that wait for company, and
 * stop() with a commit in flight.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fact } from '../core/events.js';
import { resolveTaskOptions } from '../core/options.js';
import { ModelStore } from '../../test/store/model.js';
import type { Tick, TickOutcome } from '../store/store.js';
import { Emitter, type CoordinatorEvents } from './emitter.js';
import { Engine } from './engine.js';
import { resolveCoordinatorOptions } from './options.js';
import { Sessions } from './sessions.js';

/** The reference store, with commits that wait while the gate is shut. */
class GatedStore extends ModelStore {
  commits: Tick[] = [];
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;
  private entered: (() => void) | null = null;

  /** The next commit waits until release(); resolves once it is waiting. */
  shut(): Promise<void> {
    this.gate = new Promise((r) => (this.openGate = r));
    return new Promise((r) => (this.entered = r));
  }

  release(): void {
    this.openGate?.();
    this.gate = null;
  }

  override async commitTick(tick: Tick): Promise<TickOutcome> {
    this.commits.push(tick);
    if (this.gate) {
      this.entered?.();
      await this.gate;
    }
    return super.commitTick(tick);
  }
}

function engine(store: GatedStore): Engine {
  const o = resolveCoordinatorOptions({ store, logger: () => {} });
  return new Engine(
    o,
    store,
    new Sessions(),
    { afterTick: () => {} },
    new Emitter<CoordinatorEvents>(),
  );
}

const group = (id: string) => ({
  id,
  handler: 'h',
  policy: 'collectAll' as const,
  idempotencyKey: null,
  open: false,
  options: resolveTaskOptions({}),
  inputs: [1],
});

/** The events a test wrote: no worker runs these groups, so the engine also records group.waiting. */
const ours = <E extends { type: string }>(events: E[]): E[] =>
  events.filter((e) => e.type !== 'group.waiting');

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void describe('engine scheduling', { timeout: 10_000 }, () => {
  void it('an event alone waits for company, rides with the next request, and is written with its own time', async () => {
    const store = new GatedStore();
    const e = engine(store);
    e.record({ ...fact('worker.joined', { name: 'first', slots: 1 }), at: 5 });
    await turn();
    assert.equal(store.commits.length, 0, 'no tick for an event alone at once');
    await e.request('createGroups', group('g1'));
    assert.deepEqual(
      store.commits.map((t) => t.events?.map((x) => [x.type, x.at])),
      [[['worker.joined', 5]]],
      'the event went with the request',
    );
    e.record(fact('worker.left', { name: 'second' }));
    await e.settle();
    const events = ours(await store.listEvents(0, 10));
    assert.deepEqual(
      events.map((x) => x.type),
      ['worker.joined', 'worker.left'],
    );
    assert.equal(events[0]?.at, 5);
    await e.stop();
  });

  void it('an event whose wait ran out while a commit was in flight is written after it', async () => {
    const store = new GatedStore();
    const e = engine(store);
    await e.request('createGroups', group('g1'));
    await e.settle();
    // A seal leaves nothing to dispatch: after it, only the event is left.
    const entered = store.shut();
    const sealed = e.request('seals', 'g1');
    await entered;
    e.record(fact('worker.left', { name: 'late' }));
    await sleep(60); // past the event's wait, while the commit is still in flight
    store.release();
    await sealed;
    await e.settle();
    assert.deepEqual(
      ours(await store.listEvents(0, 10)).map((x) => x.type),
      ['worker.left'],
    );
    await e.stop();
  });

  void it('after stop(0) no tick starts; quiet() resolves once the commit in flight has ended', async () => {
    const store = new GatedStore();
    const e = engine(store);
    const entered = store.shut();
    const created = e.request('createGroups', group('g1'));
    await entered;
    e.record(fact('worker.left', { name: 'waiting' }));
    await e.stop(0); // does not wait for the store (it may be unreachable)
    let quiet = false;
    const quieting = e.quiet().then(() => (quiet = true));
    await sleep(20);
    assert.equal(quiet, false, 'quiet() waits while the commit is in flight');
    store.release();
    await quieting;
    assert.equal((await created).status, 'created');
    const n = store.commits.length;
    assert.equal(n, 1);
    await sleep(60);
    assert.equal(store.commits.length, n, 'no tick after stop(), though an event was waiting');
    await assert.rejects(e.request('createGroups', group('g2')), /shutting down/);
  });
});
