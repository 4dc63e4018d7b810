/**
 * The nemesis: from one seed, several lanes inject faults concurrently until
 * the deadline. Kinds come from a shuffled deck, so every kind is injected
 * early and often; a fault takes a free target (a process or a link is under
 * at most one fault at a time), applies, holds, heals, and logs both ends to
 * the history. In PostgreSQL mode the coordinator faults are those of
 * leader-faults.ts and there is no disk to fill.
 */
import { mulberry32 } from '../proxy.js';
import type { FaultKind } from '../history.js';
import { HistoryWriter } from '../history.js';
import type { Cluster } from './cluster.js';
import { LEADER_FAULT_KINDS, LeaderFaults, isLeaderFault } from './leader-faults.js';

/** Faults on workers and links, the same in both modes. */
const LINK_FAULT_KINDS: readonly FaultKind[] = [
  'worker-kill',
  'worker-stop',
  'partition-both',
  'partition-in',
  'partition-out',
  'partition-flap',
  'slow-link',
  'lossy-link',
  'lost-reply',
];

/** PostgreSQL mode: workers, links, and the coordinators (leader-faults.ts). */
export const PG_FAULT_KINDS: readonly FaultKind[] = [...LINK_FAULT_KINDS, ...LEADER_FAULT_KINDS];

/** SQLite mode. */
export const FAULT_KINDS: readonly FaultKind[] = [
  'worker-kill',
  'worker-stop',
  'coordinator-kill',
  'coordinator-kill-burst',
  'partition-both',
  'partition-in',
  'partition-out',
  'partition-flap',
  'slow-link',
  'lossy-link',
  'lost-reply',
  'disk-full',
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface NemesisOptions {
  seed: number;
  lanes: number;
  until: number;
  /**
   * Past `until`, go on (up to `hardUntil`) while some kind has been injected
   * fewer than `minEach` times: a slow machine still gets every kind.
   */
  minEach?: number;
  hardUntil?: number;
  /** Dead-after of the coordinator: a stop must outlast it. */
  deadAfterMs: number;
  /** How long the coordinators rest after a fault; default 3-8 s. */
  coordinatorRestMs?: [number, number];
  log: (line: string) => void;
}

export class Nemesis {
  private readonly random: () => number;
  private deck: FaultKind[] = [];
  private readonly busy = new Set<string>();
  /** Faults injected and healed, by kind. */
  readonly counts: Record<string, number> = {};
  /** Faults that threw midway, by kind (each also logged). */
  readonly failed: Record<string, number> = {};
  private readonly history: HistoryWriter;
  readonly kinds: readonly FaultKind[];
  private readonly leaders: LeaderFaults | null;

  constructor(
    private readonly cluster: Cluster,
    private readonly o: NemesisOptions,
  ) {
    this.random = mulberry32(o.seed ^ 0x9e3779b9);
    this.history = new HistoryWriter(`${cluster.historyDir}/nemesis.jsonl`, 'nemesis');
    this.kinds = cluster.pg ? PG_FAULT_KINDS : FAULT_KINDS;
    this.leaders = cluster.pg ? new LeaderFaults(cluster) : null;
  }

  private between(min: number, max: number): number {
    return Math.round(min + this.random() * (max - min));
  }

  private shuffled(): FaultKind[] {
    const deck = [...this.kinds];
    for (let i = deck.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [deck[i], deck[j]] = [deck[j]!, deck[i]!];
    }
    return deck;
  }

  /**
   * The first kind in the deck whose target is free, with that target. The
   * deck holds every kind once, in a seeded order; a kind drawn goes back at
   * the end (in a new shuffled order with the others missing), so kinds take
   * turns, and a kind waiting for a busy target (the resting coordinator)
   * keeps its place without holding up the others.
   */
  private draw(): {
    kind: FaultKind;
    target: { name: string; index: number; lock: string };
  } | null {
    const missing = this.shuffled().filter((k) => !this.deck.includes(k));
    this.deck.push(...missing);
    for (let k = 0; k < this.deck.length; k++) {
      const kind = this.deck[k]!;
      const target = this.pickTarget(kind);
      if (target !== null) {
        this.deck.splice(k, 1);
        return { kind, target };
      }
    }
    return null;
  }

  async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.o.lanes }, (_, lane) => this.lane(lane)));
  }

  private going(): boolean {
    const now = Date.now();
    if (now < this.o.until) return true;
    const min = this.o.minEach ?? 0;
    return now < (this.o.hardUntil ?? 0) && this.kinds.some((k) => (this.counts[k] ?? 0) < min);
  }

  private async lane(lane: number): Promise<void> {
    await sleep(lane * 300);
    while (this.going()) {
      const next = this.draw();
      if (next === null) {
        await sleep(50);
        continue;
      }
      const { kind, target } = next;
      this.busy.add(target.lock);
      try {
        await this.inject(kind, target.name, target.index);
        this.counts[kind] = (this.counts[kind] ?? 0) + 1;
      } catch (e) {
        this.failed[kind] = (this.failed[kind] ?? 0) + 1;
        this.o.log(`nemesis: ${kind} on ${target.name} failed: ${(e as Error).message}`);
      } finally {
        // A target rests after a fault: a coordinator restarted every second
        // would measure only restarts (each gives workers a new resume grace).
        const [min, max] = this.o.coordinatorRestMs ?? [3000, 8000];
        const rest =
          target.lock === 'coordinator' ? this.between(min, max) : this.between(300, 1500);
        setTimeout(() => this.busy.delete(target.lock), rest);
      }
      await sleep(this.between(50, 400));
    }
  }

  /**
   * Coordinator kills and a full disk share one lock: a restart needs disk
   * space. In PostgreSQL mode every coordinator fault takes that lock: one at
   * a time, so each failover is measured alone.
   */
  private pickTarget(kind: FaultKind): { name: string; index: number; lock: string } | null {
    if (kind === 'disk-full' || isLeaderFault(kind)) {
      return this.busy.has('coordinator')
        ? null
        : { name: 'coordinator', index: -1, lock: 'coordinator' };
    }
    const linkFault = kind === 'slow-link' || kind === 'lossy-link' || kind === 'lost-reply';
    const n = this.cluster.workers.length;
    const options: { name: string; index: number; lock: string }[] = [];
    for (let i = 0; i < n; i++) {
      const name = `worker-${i}`;
      if (!this.busy.has(name)) options.push({ name, index: i, lock: name });
    }
    if (linkFault && !this.busy.has('client'))
      options.push({ name: 'client', index: -1, lock: 'client' });
    if (options.length === 0) return null;
    return options[Math.floor(this.random() * options.length)]!;
  }

  private async inject(kind: FaultKind, target: string, i: number): Promise<void> {
    const c = this.cluster;
    const start = (pid?: number, on = target): void => {
      target = on;
      this.history.write({ type: 'fault.start', kind, target, ...(pid ? { pid } : {}) });
    };
    const end = (): void => this.history.write({ type: 'fault.end', kind, target });
    if (this.leaders && isLeaderFault(kind)) {
      let started = false;
      try {
        await this.leaders.inject(kind, {
          between: (min, max) => this.between(min, max),
          random: this.random,
          history: this.history,
          start: (on, pid) => {
            started = true;
            start(pid, on);
          },
        });
      } finally {
        if (started) end();
      }
      return;
    }
    const proxies = c.linkProxies(target === 'client' ? -1 : i);
    switch (kind) {
      case 'worker-kill': {
        const pid = c.workers[i]!.child?.pid;
        start(pid);
        await c.kill(c.workers[i]!);
        await sleep(this.between(100, 1500));
        await c.startWorker(i);
        break;
      }
      case 'worker-stop': {
        const child = c.workers[i]!.child!;
        start(child.pid);
        child.kill('SIGSTOP');
        await sleep(this.between(this.o.deadAfterMs + 300, this.o.deadAfterMs + 2000));
        child.kill('SIGCONT');
        break;
      }
      case 'coordinator-kill':
        start(c.coordinator.child?.pid);
        await c.kill(c.coordinator);
        await sleep(this.between(50, 1000));
        await c.startCoordinator();
        break;
      case 'coordinator-kill-burst':
        start(c.coordinator.child?.pid);
        for (let k = 0; k < 3; k++) {
          await c.kill(c.coordinator);
          await sleep(this.between(20, 300));
          await c.startCoordinator();
          await sleep(this.between(100, 600));
        }
        break;
      case 'partition-both':
      case 'partition-in':
      case 'partition-out':
        start();
        await c.partition(
          i,
          kind === 'partition-both' ? 'both' : kind === 'partition-in' ? 'in' : 'out',
        );
        await sleep(this.between(500, 4000));
        await c.healPartition(i);
        break;
      case 'partition-flap': {
        start();
        const stopAt = Date.now() + this.between(1500, 4000);
        while (Date.now() < stopAt) {
          await c.partition(i, 'both');
          await sleep(this.between(100, 600));
          await c.healPartition(i);
          await sleep(this.between(100, 600));
        }
        break;
      }
      case 'slow-link': {
        start();
        const delayMs = this.between(50, 600);
        for (const p of proxies) p.slow({ delayMs, jitterMs: 100 });
        await sleep(this.between(1000, 4000));
        for (const p of proxies) p.heal();
        break;
      }
      case 'lossy-link': {
        start();
        const cutProbability = 0.02 + this.random() * 0.1;
        for (const p of proxies) p.lossy({ cutProbability });
        await sleep(this.between(1000, 3000));
        for (const p of proxies) p.heal();
        break;
      }
      case 'lost-reply': {
        start();
        const count = this.between(1, 3);
        for (const p of proxies) p.loseReplies({ count });
        await sleep(this.between(500, 2000));
        for (const p of proxies) p.heal();
        break;
      }
      case 'disk-full':
        start();
        c.fillDisk();
        await sleep(this.between(500, 2500));
        c.freeDisk();
        break;
      case 'leader-kill':
      case 'leader-stop':
      case 'leader-db-cut':
      case 'standby-kill':
        throw new Error(`${kind} needs PostgreSQL mode`);
    }
    end();
  }
}
