/**
 * Worker-protocol fuzz cases: sequences of frames from a misbehaving worker
 * (random frames, binary, non-JSON, oversize, bad UTF-8, arrays of random
 * messages, messages before hello, a second hello, wrong protocol versions,
 * duplicate, reordered and stale reports, reports on runs it does not hold or
 * on the honest worker's run, resumes with a wrong `held`), checked against a
 * model of what docs/protocol.md says the coordinator answers.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ERROR_CODES, isErrorCode } from '../src/core/errors.js';
import { DEFAULT_LIMITS } from '../src/protocol/limits.js';
import { workerMessage, type CoordinatorMessage } from '../src/protocol/worker.js';
import { LIMITS, Peer, type Harness, type Snapshot } from './fuzz-harness.js';
import { INCLUDE_KNOWN_BUGS } from './fuzz-http.js';

type RunTarget = 'held' | 'ended' | 'honest' | 'random';
type HelloResume = 'none' | 'honest' | 'junk' | 'ownWrongToken';
type HeldVariant = 'all' | 'none' | 'some' | 'plusHonest' | 'plusJunk' | 'wrongAttempt';

type Msg =
  | {
      k: 'hello';
      protocol: number;
      slots: number;
      handlers: string[];
      draining: boolean;
      resume: HelloResume;
      held: boolean;
      proto: boolean;
    }
  | { k: 'beat' | 'drain' | 'bye'; proto: boolean }
  | { k: 'result'; target: RunTarget; pick: number; delta: number; value: unknown }
  | { k: 'fail'; target: RunTarget; pick: number; delta: number; error: Record<string, unknown> }
  | { k: 'release'; target: RunTarget; pick: number; delta: number }
  | { k: 'checkpoint'; target: RunTarget; pick: number; delta: number; seq: number; state: unknown }
  | { k: 'broken'; base: Msg; how: Breakage }
  | { k: 'junk'; value: unknown };

type Breakage = { extra: string } | { drop: string } | { set: string; value: unknown };

type Step =
  | { k: 'frame'; msgs: Msg[]; fragmented: boolean }
  | { k: 'text'; text: string }
  | { k: 'binary'; bytes: number[] }
  | { k: 'oversize' }
  | { k: 'badUtf8' }
  | { k: 'deep'; depth: number; target: RunTarget; report: 'result' | 'checkpoint' }
  | { k: 'deepFrame'; depth: number; shape: 'arrays' | 'objects' }
  | { k: 'hugeArray'; items: number }
  | { k: 'reconnect'; resume: boolean; held: HeldVariant };

export interface WsCase {
  steps: Step[];
}

// ---- generators ----------------------------------------------------------------

const HANDLERS = ['wsVictim', 'wsNone'];
const target = fc.constantFrom<RunTarget>('held', 'held', 'held', 'ended', 'honest', 'random');
const delta = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 1, 2, -5) },
);
const payload = fc.oneof(
  { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4080, max: 4110 }).map((n) => 'p'.repeat(n)) },
  { weight: 1, arbitrary: fc.constant<unknown>(null) },
);
const errorObj = fc.record(
  {
    kind: fc.constantFrom('error', 'timeout', 'permanent', 'handler_not_found'),
    message: fc.string({ maxLength: 40 }),
    name: fc.string({ maxLength: 20 }),
  },
  { requiredKeys: ['kind', 'message'] },
);

type HelloMsg = Extract<Msg, { k: 'hello' }>;
const hello: fc.Arbitrary<HelloMsg> = fc.record({
  k: fc.constant('hello' as const),
  protocol: fc.oneof(
    { weight: 8, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.constantFrom(2, 3, 1000) },
  ),
  slots: fc.integer({ min: 1, max: 4 }),
  handlers: fc.subarray(HANDLERS),
  draining: fc.oneof(
    { weight: 6, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  resume: fc.constantFrom<HelloResume>('none', 'none', 'honest', 'junk', 'ownWrongToken'),
  held: fc.boolean(),
  proto: fc.boolean(),
});

const report: fc.Arbitrary<Msg> = fc.oneof(
  fc.record({ k: fc.constant('result' as const), target, pick: fc.nat(), delta, value: payload }),
  fc.record({ k: fc.constant('fail' as const), target, pick: fc.nat(), delta, error: errorObj }),
  fc.record({ k: fc.constant('release' as const), target, pick: fc.nat(), delta }),
  fc.record({
    k: fc.constant('checkpoint' as const),
    target,
    pick: fc.nat(),
    delta,
    seq: fc.nat({ max: 5 }),
    state: payload,
  }),
);
const simple: fc.Arbitrary<Msg> = fc.record({
  k: fc.constantFrom('beat' as const, 'beat' as const, 'drain' as const),
  proto: fc.boolean(),
});

/** Changes that make any message break its schema for sure. */
const breakage: fc.Arbitrary<Breakage> = fc.oneof(
  fc
    .constantFrom('x', 'constructor', 'prototype', 'workerId', 'toString', '')
    .map((extra) => ({ extra })),
  fc
    .constantFrom(
      't',
      'taskId',
      'attempt',
      'value',
      'error',
      'seq',
      'state',
      'protocol',
      'name',
      'slots',
      'handlers',
      'labels',
    )
    .map((drop) => ({ drop })),
  fc
    .oneof(
      fc.tuple(
        fc.constantFrom('taskId', 'attempt'),
        fc.constantFrom<unknown>(0, -1, 1.5, '1', null, [], 2.5, 'NaN'),
      ),
      fc.tuple(
        fc.constant('t'),
        fc.constantFrom<unknown>('RESULT', 'hello ', '', 1, null, 'welcome', 'ack', 'run'),
      ),
      fc.tuple(fc.constant('seq'), fc.constantFrom<unknown>(-1, 0.5, '0')),
      fc.tuple(
        fc.constant('error'),
        fc.constantFrom<unknown>(
          { kind: 'poison', message: 'x' },
          { kind: 'error', message: 'm'.repeat(64 * 1024 + 1) },
          { kind: 'error', message: 'x', name: 'n'.repeat(201) },
          { kind: 'error', message: 'x', extra: 1 },
          { kind: 'error' },
          'boom',
          null,
        ),
      ),
      fc.tuple(fc.constant('protocol'), fc.constantFrom<unknown>(0, 1.5, '1', null)),
      fc.tuple(fc.constant('slots'), fc.constantFrom<unknown>(0, 100_001, 1.5, '2')),
      fc.tuple(fc.constant('name'), fc.constantFrom<unknown>('', 'n'.repeat(201), 1)),
      fc.tuple(
        fc.constant('handlers'),
        fc.constantFrom<unknown>('wsVictim', [''], [1], Array(10_001).fill('h')),
      ),
      fc.tuple(fc.constant('labels'), fc.constantFrom<unknown>(null, Array(1001).fill('l'))),
      fc.tuple(
        fc.constant('resume'),
        fc.constantFrom<unknown>(
          { workerId: 'w_x' },
          { workerId: '', token: 't' },
          { workerId: 'w', token: 't', x: 1 },
          'w_x',
        ),
      ),
      fc.tuple(
        fc.constant('held'),
        fc.constantFrom<unknown>([{ taskId: 1, attempt: 0 }], [{ taskId: 1 }], 'all', [
          { taskId: 1, attempt: 1, x: 1 },
        ]),
      ),
      fc.tuple(fc.constant('draining'), fc.constantFrom<unknown>('yes', 1, null)),
    )
    .map(([set, value]) => ({ set, value })),
);

const junk = fc
  .anything({ maxDepth: 3 })
  .map((x) => {
    const text = JSON.stringify(x);
    return text === undefined ? null : (JSON.parse(text) as unknown);
  })
  .filter((x) => !workerMessage.check(x));

const msg: fc.Arbitrary<Msg> = fc.oneof(
  { weight: 2, arbitrary: hello },
  { weight: 6, arbitrary: report },
  { weight: 2, arbitrary: simple },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.oneof(hello, report, simple), breakage)
      .map(([base, how]) => ({ k: 'broken' as const, base, how })),
  },
  { weight: 1, arbitrary: junk.map((value) => ({ k: 'junk' as const, value })) },
  { weight: 1, arbitrary: fc.constant<Msg>({ k: 'bye', proto: false }) },
);

const nonJson = fc.oneof(
  fc.constantFrom(
    '',
    'not json',
    '[',
    '[{]',
    '{"t":"beat"}',
    '1',
    '"x"',
    'null',
    'true',
    '{}',
    '[]',
    '[[]]',
    '\ufeff[]',
    '[{"t":"beat"},]',
  ),
  fc.string({ maxLength: 30 }),
);

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      k: fc.constant('frame' as const),
      msgs: fc.array(msg, { minLength: 1, maxLength: 6 }),
      fragmented: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('frame' as const),
      msgs: fc.array(msg, { minLength: 20, maxLength: 60 }),
      fragmented: fc.constant(false),
    }),
  },
  { weight: 2, arbitrary: nonJson.map((text) => ({ k: 'text' as const, text })) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.nat({ max: 255 }), { maxLength: 20 })
      .map((bytes) => ({ k: 'binary' as const, bytes })),
  },
  { weight: 1, arbitrary: fc.constantFrom<Step>({ k: 'oversize' }, { k: 'badUtf8' }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('deep' as const),
      // Around the coordinator's maxDepth (the default: the harness does not set it), and far beyond.
      depth: fc.constantFrom(
        10,
        DEFAULT_LIMITS.maxDepth,
        DEFAULT_LIMITS.maxDepth + 1,
        100,
        1000,
        3000,
        20_000,
      ),
      target,
      report: fc.constantFrom<'result' | 'checkpoint'>('result', 'checkpoint'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.record({
        k: fc.constant('deepFrame' as const),
        depth: fc.constantFrom(3000, 20_000),
        shape: fc.constantFrom<'arrays' | 'objects'>('arrays', 'objects'),
      }),
      fc.record({
        k: fc.constant('hugeArray' as const),
        items: fc.constantFrom(10_001, 30_000),
      }),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('reconnect' as const),
      resume: fc.boolean(),
      held: fc.constantFrom<HeldVariant>(
        'all',
        'none',
        'some',
        'plusHonest',
        'plusJunk',
        'wrongAttempt',
      ),
    }),
  },
);

/** Most cases start with a hello, so the reports meet a session. */
export const wsCase: fc.Arbitrary<WsCase> = fc
  .tuple(
    fc.option(
      hello.map((h) => ({ ...h, protocol: 1 })),
      { freq: 5 },
    ),
    fc.array(step, { minLength: 1, maxLength: 4 }),
  )
  .map(([first, steps]) => ({
    steps: first ? [{ k: 'frame', msgs: [first], fragmented: false }, ...steps] : steps,
  }));

/** The index of the hello that makes the coordinator close the connection (wrong protocol), or -1. */
function closingHello(msgs: Rendered[], bound: boolean): number {
  let pending = false;
  for (let i = 0; i < msgs.length; i++) {
    const r = msgs[i]!;
    if (r.kind !== 'valid' || r.m.k !== 'hello') continue;
    if (bound || pending) continue;
    if (r.m.protocol !== 1) return i;
    pending = true;
  }
  return -1;
}

// ---- the model -----------------------------------------------------------------

interface SessionModel {
  workerId: string;
  token: string;
  handlers: Set<string>;
  /** taskId -> attempt of the runs it holds. */
  held: Map<number, number>;
  left: boolean;
}

type Key = string;
const key = (taskId: number, attempt: number): Key => `${taskId}#${attempt}`;

interface Expected {
  errors: string[];
  beats: number;
  welcome: { resumed: boolean } | null;
  /** Per run: how many reports, whether one must commit, whether all must be stale. */
  acks: Map<Key, { n: number; commit: boolean; honest: boolean }>;
  saved: { k: Key; seq: number; ok: boolean | 'unlessReported'; code?: string }[];
  revokes: Key[];
  close: number | null;
  /** Something may change: then the state snapshot is not compared. */
  changes: boolean;
}

const emptyExpected = (): Expected => ({
  errors: [],
  beats: 0,
  welcome: null,
  acks: new Map(),
  saved: [],
  revokes: [],
  close: null,
  changes: false,
});

export class WsFuzz {
  readonly stats = new Map<string, number>();
  private peer!: Peer;
  /** The session bound to the current connection (as the coordinator sees it). */
  private bound: SessionModel | null = null;
  private sessions: SessionModel[] = [];
  private ended: [number, number][] = [];
  private victimGroup = '';
  private snap: Snapshot | null = null;

  constructor(private readonly h: Harness) {}

  async setup(): Promise<void> {
    await this.refill();
  }

  async finish(): Promise<void> {
    const h = this.h;
    assert.deepEqual(
      h.honest.inbox.filter((m) => m.t !== 'beat'),
      [],
      'the honest worker got nothing but beats',
    );
    h.honest.send([{ t: 'result', taskId: h.ref.taskId, attempt: h.ref.attempt, value: 'honest' }]);
    const ack = await h.take(h.honest, 'ack');
    assert.equal(ack.status, 'committed', "the honest worker's result commits after all the fuzz");
    const tasks = await h.json('GET', `/v1/groups/${h.ref.groupId}/tasks`);
    const t = (tasks.body['tasks'] as Record<string, unknown>[])[0]!;
    assert.deepEqual(
      [t['state'], t['attempt'], t['value']],
      ['succeeded', h.ref.attempt, 'honest'],
    );
  }

  private count(k: string): void {
    this.stats.set(k, (this.stats.get(k) ?? 0) + 1);
  }

  /** Keeps a few victim tasks pending for fuzz workers to get. */
  private async refill(): Promise<void> {
    if (this.victimGroup) {
      const g = await this.h.json('GET', `/v1/groups/${this.victimGroup}`);
      if ((g.body['pending'] as number) >= 8) return;
    }
    const r = await this.h.json('POST', '/v1/groups', {
      handler: 'wsVictim',
      inputs: Array.from({ length: 20 }, (_, i) => i),
      options: { maxAttempts: 1000, maxNodeFailures: 1000, backoffMs: 0, backoffMaxMs: 0 },
    });
    assert.equal(r.status, 201);
    this.victimGroup = r.body['id'] as string;
  }

  async runCase(c: WsCase): Promise<void> {
    const h = this.h;
    await this.refill();
    await h.quiesce();
    this.snap = await h.snapshot();
    this.sessions = [];
    this.bound = null;
    this.ended = [];
    this.peer = new Peer(h.url);
    await this.peer.opened;
    try {
      for (const s of c.steps) await this.step(s);
      await this.cleanup();
    } finally {
      await this.peer.close();
    }
    await h.settle();
    assert.equal(
      h.coordinator.sessions.size,
      1,
      'after a case only the honest worker has a session',
    );
    await h.healthy('after a WebSocket case');
    assert.deepEqual(
      h.honest.inbox.filter((m) => m.t !== 'beat'),
      [],
      'the honest worker got nothing but beats',
    );
    h.honest.inbox.length = 0;
  }

  private async ensureOpen(): Promise<void> {
    if (this.peer.open) return;
    await this.peer.close();
    this.bound = null;
    this.peer = new Peer(this.h.url);
    await this.peer.opened;
  }

  /** Waits until the coordinator has read, committed and answered everything sent so far. */
  private async sync(): Promise<void> {
    await this.peer.roundTrip();
    await this.h.settle();
    await this.peer.roundTrip();
  }

  private async step(s: Step): Promise<void> {
    this.count(s.k);
    if (s.k === 'reconnect') return this.reconnect(s.resume, s.held);
    await this.ensureOpen();
    const exp = emptyExpected();
    const p = this.peer;
    switch (s.k) {
      case 'frame': {
        let msgs = s.msgs.map((m) => this.render(m));
        // Bug 3 (fixed): what follows a hello with a wrong protocol in the same frame is ignored.
        const cut = closingHello(msgs, this.bound !== null);
        if (cut >= 0 && !INCLUDE_KNOWN_BUGS) msgs = msgs.slice(0, cut + 1);
        for (const m of s.msgs.slice(0, msgs.length))
          this.count(m.k === 'broken' ? `broken:${m.base.k}` : m.k);
        this.expectFrame(msgs, exp);
        const text = JSON.stringify(msgs.map((m) => m.wire));
        if (s.fragmented && text.length > 2) {
          await this.before(exp);
          const cut = Math.floor(text.length / 2);
          p.ws.send(text.slice(0, cut), { fin: false });
          p.ws.send(text.slice(cut), { fin: true });
        } else {
          await this.before(exp);
          p.ws.send(text);
        }
        break;
      }
      case 'deep': {
        // A result or checkpoint nested `depth` levels: up to maxDepth it is a report like any
        // other; deeper, a result fails its run for good (acked like a report) and a checkpoint
        // is answered saved/too_deep, on a session; without one the answer is a too_deep error.
        const base =
          s.report === 'result'
            ? this.render({ k: 'result', target: s.target, pick: 0, delta: 0, value: null })
            : this.render({
                k: 'checkpoint',
                target: s.target,
                pick: 0,
                delta: 0,
                seq: 0,
                state: null,
              });
        const nested = '['.repeat(s.depth) + ']'.repeat(s.depth);
        const field = s.report === 'result' ? 'value' : 'state';
        const text = JSON.stringify([base.wire]).replace(`"${field}":null`, `"${field}":${nested}`);
        if (text.length > LIMITS.maxMessageBytes) {
          exp.close = 1009;
          exp.changes = true;
        } else if (s.depth <= DEFAULT_LIMITS.maxDepth) this.expectFrame([base], exp);
        else if (!this.bound || base.kind !== 'valid') exp.errors.push('too_deep');
        else if (s.report === 'result') this.expectFrame([base], exp);
        else
          exp.saved.push({
            k: key(base.taskId!, base.attempt!),
            seq: 0,
            ok: false,
            code: 'too_deep',
          });
        await this.before(exp);
        p.ws.send(text);
        break;
      }
      case 'deepFrame': {
        // The whole frame nested thousands deep: one too_deep error, nothing changes.
        const text =
          s.shape === 'arrays'
            ? '['.repeat(s.depth) + ']'.repeat(s.depth)
            : '{"a":'.repeat(s.depth) + '1' + '}'.repeat(s.depth);
        exp.errors.push('too_deep');
        await this.before(exp);
        p.ws.send(text);
        break;
      }
      case 'hugeArray': {
        // A hello with more handlers than its schema allows: refused by length, not item by item.
        const handlers = new Array<string>(s.items).fill('h');
        exp.errors.push('protocol_error');
        await this.before(exp);
        p.ws.send(
          JSON.stringify([{ t: 'hello', protocol: 1, name: 'x', handlers, slots: 1, labels: [] }]),
        );
        break;
      }
      case 'text': {
        let v: unknown;
        let json = true;
        try {
          v = JSON.parse(s.text);
        } catch {
          json = false;
        }
        if (!json || !Array.isArray(v)) exp.errors.push('protocol_error');
        else
          this.expectFrame(
            (v as unknown[]).map((wire) => this.classify(wire)),
            exp,
          );
        await this.before(exp);
        p.ws.send(s.text);
        break;
      }
      case 'binary':
        exp.errors.push('protocol_error');
        await this.before(exp);
        p.ws.send(Buffer.from(s.bytes), { binary: true });
        break;
      case 'oversize':
        exp.close = 1009;
        exp.changes = true;
        p.ws.send(JSON.stringify([{ t: 'beat' }, 'x'.repeat(LIMITS.maxMessageBytes)]));
        break;
      case 'badUtf8':
        exp.close = 1007;
        exp.changes = true;
        p.ws.send(Buffer.from([0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]), { binary: false });
        break;
    }
    await this.sync();
    await this.check(exp);
  }

  /** A message that came from a random text frame, as the model sees it. */
  private classify(wire: unknown): Rendered {
    if (!workerMessage.check(wire)) return { wire, kind: 'invalid' };
    const w = wire as Record<string, unknown> & {
      t: string;
      taskId: number;
      attempt: number;
      seq: number;
    };
    switch (w.t) {
      case 'hello':
        return {
          wire,
          kind: 'valid',
          m: {
            k: 'hello',
            protocol: w['protocol'] as number,
            slots: 1,
            handlers: w['handlers'] as string[],
            draining: false,
            resume: 'junk',
            held: false,
            proto: false,
          },
        };
      case 'beat':
      case 'drain':
      case 'bye':
        return { wire, kind: 'valid', m: { k: w.t, proto: false } };
      default:
        return {
          wire,
          kind: 'valid',
          m: {
            k: 'checkpoint',
            target: 'random',
            pick: 0,
            delta: 0,
            seq: w.seq,
            state: w['state'],
          },
          as: w.t,
          taskId: w.taskId,
          attempt: w.attempt,
        };
    }
  }

  /** Turns a message description into what is sent, resolving run targets against the model. */
  private render(m: Msg): Rendered {
    const run = (t: RunTarget, pick: number, d: number): [number, number] => {
      const held = this.bound ? [...this.bound.held] : [];
      if (t === 'held' && held.length > 0) {
        const [id, a] = held[pick % held.length]!;
        return [id, a + d];
      }
      if (t === 'ended' && this.ended.length > 0) {
        const [id, a] = this.ended[pick % this.ended.length]!;
        return [id, a + d];
      }
      if (t === 'random') return [1 + (pick % 1_000_000), 1 + (pick % 3) + d];
      return [this.h.ref.taskId, this.h.ref.attempt + d];
    };
    const withProto = (o: Record<string, unknown>, on: boolean): Record<string, unknown> => {
      if (!on) return o;
      Object.defineProperty(o, '__proto__', {
        value: { polluted: 'yes' },
        enumerable: true,
        configurable: true,
        writable: true,
      });
      return o;
    };
    switch (m.k) {
      case 'hello': {
        const resume =
          m.resume === 'honest'
            ? { workerId: this.h.honestWorkerId, token: 'guessed-token' }
            : m.resume === 'junk'
              ? { workerId: 'w_000000000000', token: 'x' }
              : m.resume === 'ownWrongToken' && this.sessions[0]
                ? { workerId: this.sessions[0].workerId, token: this.sessions[0].token + 'x' }
                : undefined;
        const wire = withProto(
          {
            t: 'hello',
            protocol: m.protocol,
            name: 'fuzz',
            handlers: m.handlers,
            slots: m.slots,
            labels: [],
            ...(resume ? { resume } : {}),
            ...(m.held
              ? { held: [{ taskId: this.h.ref.taskId, attempt: this.h.ref.attempt }] }
              : {}),
            ...(m.draining ? { draining: true } : {}),
          },
          m.proto,
        );
        return { wire, kind: 'valid', m };
      }
      case 'beat':
      case 'drain':
      case 'bye':
        return { wire: withProto({ t: m.k }, m.proto), kind: 'valid', m };
      case 'result':
      case 'fail':
      case 'release':
      case 'checkpoint': {
        const [taskId, attempt] = run(m.target, m.pick, m.delta);
        const extra =
          m.k === 'result'
            ? { value: m.value }
            : m.k === 'fail'
              ? { error: m.error }
              : m.k === 'checkpoint'
                ? { seq: m.seq, state: m.state }
                : {};
        const wire = { t: m.k, taskId, attempt, ...extra };
        return attempt < 1
          ? { wire, kind: 'invalid' }
          : { wire, kind: 'valid', m, taskId, attempt };
      }
      case 'broken': {
        const base = this.render(m.base).wire as Record<string, unknown>;
        const o: Record<string, unknown> = { ...base };
        const how = m.how;
        if ('extra' in how)
          Object.defineProperty(o, how.extra, {
            value: 1,
            enumerable: true,
            configurable: true,
            writable: true,
          });
        else if ('drop' in how) {
          if (Object.hasOwn(o, how.drop)) delete o[how.drop];
          else o['x'] = 1;
        } else o[how.set] = how.value;
        return { wire: o, kind: 'invalid' };
      }
      case 'junk':
        return { wire: m.value, kind: 'invalid' };
    }
  }

  /** What the coordinator must answer to one frame of messages, in order. */
  private expectFrame(msgs: Rendered[], exp: Expected): void {
    const start = this.bound ? new Map(this.bound.held) : new Map<number, number>();
    const s = this.bound;
    let pending = false;
    let closed = false;
    const reported = new Set<Key>();
    for (const r of msgs) {
      if (closed) continue;
      if (r.kind === 'invalid') {
        exp.errors.push('protocol_error');
        continue;
      }
      const m = r.m;
      const kind = r.as ?? m.k;
      if (m.k === 'hello') {
        if (s || pending) exp.errors.push('protocol_error');
        else if (m.protocol !== 1) {
          exp.errors.push('protocol_error');
          exp.close = 1002;
          closed = true;
        } else {
          pending = true;
          exp.welcome = { resumed: false };
          exp.changes = true;
          this.pendingHandlers = new Set(m.handlers);
        }
        continue;
      }
      if (!s || pending) {
        exp.errors.push('session_unknown');
        continue;
      }
      switch (kind) {
        case 'beat':
          exp.beats++;
          break;
        case 'drain':
          exp.changes = true;
          break;
        case 'bye':
          // The session is gone before its outbox is flushed: what it queued in this frame is dropped.
          exp.close = 1000;
          exp.changes = true;
          closed = true;
          s.left = true;
          s.held.clear();
          exp.beats = 0;
          exp.saved = [];
          for (const [k, a] of exp.acks)
            if (a.commit) this.ended.push(k.split('#').map(Number) as [number, number]);
          exp.acks.clear();
          break;
        case 'result':
        case 'fail':
        case 'release': {
          const k = key(r.taskId!, r.attempt!);
          const held = start.get(r.taskId!) === r.attempt;
          const a = exp.acks.get(k) ?? {
            n: 0,
            commit: held,
            honest: r.taskId === this.h.ref.taskId,
          };
          a.n++;
          exp.acks.set(k, a);
          if (held) {
            reported.add(k);
            exp.changes = true;
          }
          break;
        }
        case 'checkpoint': {
          const k = key(r.taskId!, r.attempt!);
          const w = r.wire as { state?: unknown; seq: number };
          const size = JSON.stringify(w.state ?? null).length;
          if (size > LIMITS.maxResultBytes)
            exp.saved.push({ k, seq: w.seq, ok: false, code: 'input_too_large' });
          else if (start.get(r.taskId!) === r.attempt) {
            exp.saved.push({ k, seq: w.seq, ok: 'unlessReported' });
            exp.changes = true;
          } else exp.saved.push({ k, seq: w.seq, ok: false, code: 'stale_attempt' });
          break;
        }
      }
    }
    for (const sv of exp.saved) {
      if (sv.ok !== 'unlessReported') continue;
      sv.ok = !reported.has(sv.k);
      if (!sv.ok) sv.code = 'stale_attempt';
    }
  }

  private pendingHandlers = new Set<string>();

  /** Compares what arrived with what was expected, then moves the model on. */
  private async check(exp: Expected): Promise<void> {
    const p = this.peer;
    if (exp.close !== null) {
      await Promise.race([p.closed, new Promise((r) => setTimeout(r, 5000))]);
      assert.equal(
        p.closeCode,
        exp.close,
        'the coordinator closed the connection with the documented code',
      );
    } else assert.ok(p.open, `the connection stays open (closed with ${p.closeCode})`);
    assert.deepEqual(
      p.malformed,
      [],
      'every frame from the coordinator is a JSON array of messages',
    );
    const got = p.drain();
    const what = JSON.stringify(got).slice(0, 1500);
    const of = <T extends CoordinatorMessage['t']>(t: T) =>
      got.filter((m) => m.t === t) as Extract<CoordinatorMessage, { t: T }>[];
    const known = new Set(['error', 'beat', 'welcome', 'ack', 'saved', 'revoke', 'run']);
    for (const m of got) assert.ok(known.has(m.t), `an expected message type: ${what}`);
    for (const e of of('error')) {
      assert.ok(isErrorCode(e.code), `a known error code: ${what}`);
      assert.ok(ERROR_CODES[e.code] && typeof e.message === 'string' && e.message.length > 0);
    }
    assert.deepEqual(
      of('error')
        .map((e) => e.code)
        .sort(),
      [...exp.errors].sort(),
      `the error messages: ${what}`,
    );
    assert.equal(of('beat').length, exp.beats, `one beat per beat: ${what}`);
    const welcomes = of('welcome');
    assert.equal(welcomes.length, exp.welcome ? 1 : 0, `welcome: ${what}`);
    if (exp.welcome && welcomes[0]) {
      assert.equal(welcomes[0].resumed, exp.welcome.resumed, `welcome.resumed: ${what}`);
      const s: SessionModel = {
        workerId: welcomes[0].workerId,
        token: welcomes[0].token,
        handlers: this.pendingHandlers,
        held: new Map(),
        left: false,
      };
      assert.ok(
        !this.sessions.some((x) => x.workerId === s.workerId),
        'a new session has a new workerId',
      );
      assert.notEqual(s.workerId, this.h.honestWorkerId, "nobody gets the honest worker's session");
      this.sessions.push(s);
      this.bound = s;
    }
    // Acks: per run, as many as reports; exactly one commits when the worker held it, else none.
    const acks = of('ack');
    const byKey = new Map<Key, string[]>();
    for (const a of acks)
      byKey.set(key(a.taskId, a.attempt), [
        ...(byKey.get(key(a.taskId, a.attempt)) ?? []),
        a.status,
      ]);
    assert.deepEqual(
      [...byKey.keys()].sort(),
      [...exp.acks.keys()].sort(),
      `an ack for every report: ${what}`,
    );
    for (const [k, e] of exp.acks) {
      const st = byKey.get(k)!;
      assert.equal(st.length, e.n, `${e.n} acks for ${k}: ${what}`);
      for (const x of st)
        assert.ok(
          ['committed', 'stale', 'already_final'].includes(x),
          `a known ack status: ${what}`,
        );
      assert.equal(
        st.filter((x) => x === 'committed').length,
        e.commit ? 1 : 0,
        `committed only for a run this worker holds (${k}): ${what}`,
      );
      if (e.honest)
        assert.ok(
          st.every((x) => x === 'stale'),
          `a report on the honest worker's run is stale: ${what}`,
        );
      if (e.commit) {
        const [t, a] = k.split('#').map(Number) as [number, number];
        this.bound?.held.delete(t);
        this.ended.push([t, a]);
      }
    }
    const saved = of('saved')
      .map((x) => `${key(x.taskId, x.attempt)}/${x.seq}/${x.ok}/${x.code ?? ''}`)
      .sort();
    assert.deepEqual(
      saved,
      exp.saved.map((x) => `${x.k}/${x.seq}/${x.ok}/${x.code ?? ''}`).sort(),
      `saved: ${what}`,
    );
    assert.deepEqual(
      of('revoke')
        .map((r) => `${key(r.taskId, r.attempt)}/${r.reason}`)
        .sort(),
      [...exp.revokes].sort(),
      `revokes: ${what}`,
    );
    for (const r of of('run')) {
      const s = this.bound;
      assert.ok(s && !s.left, `a run only for a session on this connection: ${what}`);
      assert.ok(s.handlers.has(r.handler), `a run only for a handler the worker has: ${what}`);
      assert.notEqual(
        r.taskId,
        this.h.ref.taskId,
        "the honest worker's run is never given to another: " + what,
      );
      assert.ok(
        !this.sessions.some((x) => x.held.has(r.taskId)),
        `a run nobody else holds: ${what}`,
      );
      s.held.set(r.taskId, r.attempt);
    }
    if (exp.close !== null && this.bound?.left) this.bound = null;
    await this.compareState(exp.changes || of('run').length > 0);
  }

  /** Before a step the model expects to be refused: the state to compare with afterwards. */
  private async before(exp: Expected): Promise<void> {
    if (exp.changes || this.snap) return;
    await this.h.quiesce();
    this.snap = await this.h.snapshot();
  }

  /**
   * After a refused step the snapshot must be the same; after a step that may
   * change things only the reference lease is checked (in memory, cheaply).
   */
  private async compareState(changes: boolean): Promise<void> {
    const h = this.h;
    await h.quiesce();
    if (changes || !this.snap) {
      this.snap = null;
      const lease = h.coordinator.engine.leases.get(h.ref.taskId);
      assert.ok(lease, 'the reference task is still leased');
      assert.deepEqual(
        [lease.attempt, lease.workerId],
        [h.ref.attempt, h.honestWorkerId],
        'the reference lease did not move',
      );
      return;
    }
    const now = await h.snapshot();
    assert.equal(now.text, this.snap.text, 'refused messages changed the state');
    assert.equal(now.dataVersion, this.snap.dataVersion, 'refused messages wrote to the store');
  }

  /** Closes this connection and opens another; with resume, it takes its session back with a `held` list. */
  private async reconnect(resume: boolean, variant: HeldVariant): Promise<void> {
    const h = this.h;
    const s = this.bound ?? [...this.sessions].reverse().find((x) => !x.left);
    await this.peer.close();
    this.bound = null;
    this.peer = new Peer(h.url);
    await this.peer.opened;
    await this.sync();
    await this.compareState(true);
    if (!resume || !s) return;
    const mine = [...s.held].map(([taskId, attempt]) => ({ taskId, attempt }));
    const held =
      variant === 'all'
        ? mine
        : variant === 'none'
          ? []
          : variant === 'some'
            ? mine.filter((_, i) => i % 2 === 0)
            : variant === 'plusHonest'
              ? [...mine, { taskId: h.ref.taskId, attempt: h.ref.attempt }]
              : variant === 'plusJunk'
                ? [...mine, { taskId: 999_999, attempt: 3 }]
                : mine.map((r) => ({ taskId: r.taskId, attempt: r.attempt + 1 }));
    this.peer.send([
      {
        t: 'hello',
        protocol: 1,
        name: 'fuzz',
        handlers: [...s.handlers],
        slots: 4,
        labels: [],
        resume: { workerId: s.workerId, token: s.token },
        held,
      },
    ]);
    await this.sync();
    const got = this.peer.drain();
    const what = JSON.stringify(got).slice(0, 1500);
    const welcome = got.find((m) => m.t === 'welcome');
    assert.ok(
      welcome && welcome.t === 'welcome' && welcome.resumed && welcome.workerId === s.workerId,
      `resumed within the grace: ${what}`,
    );
    const keep = new Map(held.map((r) => [r.taskId, r.attempt]));
    const revokes = [...keep]
      .filter(([t, a]) => s.held.get(t) !== a)
      .map(([t, a]) => `${key(t, a)}/stale`);
    assert.deepEqual(
      got
        .filter((m) => m.t === 'revoke')
        .map(
          (r) =>
            `${key((r as { taskId: number }).taskId, (r as { attempt: number }).attempt)}/${(r as { reason: string }).reason}`,
        )
        .sort(),
      revokes.sort(),
      `revoke stale for held runs it has no lease on: ${what}`,
    );
    for (const [t, a] of [...s.held]) if (keep.get(t) !== a) s.held.delete(t);
    this.bound = s;
    for (const m of got) {
      assert.ok(
        m.t === 'welcome' || m.t === 'revoke' || m.t === 'run',
        `only welcome, revoke and run after a resume: ${what}`,
      );
      if (m.t === 'run') {
        assert.ok(s.handlers.has(m.handler) && m.taskId !== h.ref.taskId, what);
        s.held.set(m.taskId, m.attempt);
      }
    }
    await this.compareState(true);
  }

  /** Every session the case made leaves with bye (resumed first when its connection is gone). */
  private async cleanup(): Promise<void> {
    for (const s of this.sessions) {
      if (s.left) continue;
      if (this.bound !== s || !this.peer.open) {
        await this.peer.close();
        this.peer = new Peer(this.h.url);
        await this.peer.opened;
        const held = [...s.held].map(([taskId, attempt]) => ({ taskId, attempt }));
        this.peer.send([
          {
            t: 'hello',
            protocol: 1,
            name: 'fuzz',
            handlers: [],
            slots: 1,
            labels: [],
            resume: { workerId: s.workerId, token: s.token },
            held,
          },
        ]);
        await this.sync();
        const w = this.peer.drain().find((m) => m.t === 'welcome');
        assert.ok(
          w && w.t === 'welcome' && w.resumed,
          'a lingering session resumes within the grace',
        );
        this.bound = s;
      }
      this.peer.send([{ t: 'bye' }]);
      await Promise.race([this.peer.closed, new Promise((r) => setTimeout(r, 5000))]);
      assert.equal(this.peer.closeCode, 1000, 'bye closes the connection');
      s.left = true;
      this.bound = null;
    }
  }
}

type Rendered =
  | { wire: unknown; kind: 'invalid' }
  /** `as`: the real type of a report classified from a random text frame. */
  | { wire: unknown; kind: 'valid'; m: Msg; as?: string; taskId?: number; attempt?: number };
