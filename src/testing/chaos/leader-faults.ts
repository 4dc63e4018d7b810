/**
 * Faults on the coordinators of PostgreSQL mode. Each finds its target when
 * it begins (the leader, through every coordinator's /healthz), and after a
 * fault on the leader measures how long until a coordinator with a newer
 * epoch answered as leader (a `failover` line in the history).
 *
 * | kind                     | what                                                                          |
 * | ------------------------ | ----------------------------------------------------------------------------- |
 * | `coordinator-kill`       | SIGKILL the leader, restart it on its port 0.05-1 s later                      |
 * | `coordinator-kill-burst` | three times: SIGKILL the leader, restart it 20-300 ms later, wait for the next |
 * | `leader-kill`            | SIGKILL the leader, wait for the next one, restart the old one 0.5-3 s later   |
 * | `leader-stop`            | SIGSTOP the leader until the next one leads (+0-2 s), then SIGCONT: a zombie   |
 * | `leader-db-cut`          | blackhole the leader's database link until the next one leads (+0-2 s)         |
 * | `standby-kill`           | SIGKILL a standby, restart it 0.1-3 s later                                    |
 */
import type { FaultKind } from '../history.js';
import { HistoryWriter } from '../history.js';
import type { Cluster } from './cluster.js';
import type { PgCoordinators } from './pg-coordinators.js';

export const LEADER_FAULT_KINDS = [
  'coordinator-kill',
  'coordinator-kill-burst',
  'leader-kill',
  'leader-stop',
  'leader-db-cut',
  'standby-kill',
] as const satisfies readonly FaultKind[];
export type LeaderFaultKind = (typeof LEADER_FAULT_KINDS)[number];

export function isLeaderFault(kind: FaultKind): kind is LeaderFaultKind {
  return (LEADER_FAULT_KINDS as readonly FaultKind[]).includes(kind);
}

/** How long a failover may take before it is recorded as a timeout (and the fault healed). */
const FAILOVER_LIMIT_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LeaderFaultContext {
  between: (min: number, max: number) => number;
  random: () => number;
  history: HistoryWriter;
  /** Writes the fault's start line (once the target is known). */
  start: (target: string, pid?: number) => void;
}

export class LeaderFaults {
  private readonly pg: PgCoordinators;

  constructor(cluster: Cluster) {
    if (!cluster.pg) throw new Error('leader faults need PostgreSQL mode');
    this.pg = cluster.pg;
  }

  async inject(kind: LeaderFaultKind, x: LeaderFaultContext): Promise<void> {
    switch (kind) {
      case 'coordinator-kill':
        return this.killLeader(kind, x, x.between(50, 1000), false);
      case 'leader-kill':
        return this.killLeader(kind, x, x.between(500, 3000), true);
      case 'coordinator-kill-burst': {
        for (let n = 0; n < 3; n++) {
          await this.killLeader(kind, x, x.between(20, 300), false, n === 0);
          await sleep(x.between(100, 600));
        }
        return;
      }
      case 'leader-stop':
        return this.holdLeader(kind, x, {
          apply: (k) => this.pg.members[k]!.child?.kill('SIGSTOP'),
          heal: (k) => this.pg.members[k]!.child?.kill('SIGCONT'),
        });
      case 'leader-db-cut':
        return this.holdLeader(kind, x, {
          apply: (k) => this.pg.dbProxies[k]!.blackhole(true),
          heal: (k) => this.pg.dbProxies[k]!.heal(),
        });
      case 'standby-kill': {
        const standbys = await this.pg.standbys();
        const k = standbys[Math.floor(x.random() * standbys.length)];
        if (k === undefined) throw new Error('no standby is up');
        x.start(this.pg.members[k]!.name, this.pg.members[k]!.child?.pid);
        await this.pg.kill(k);
        await sleep(x.between(100, 3000));
        await this.pg.start(k);
        return;
      }
    }
  }

  /** The leader now; waits a while for one (a previous fault may still be settling). */
  private async currentLeader(): Promise<{ k: number; epoch: number }> {
    const l = await this.pg.awaitLeader({ timeoutMs: 15_000 });
    if (!l) throw new Error('no coordinator leads: nothing to inject on');
    return l;
  }

  /**
   * SIGKILL the leader; restart it after `restMs`, either at once (racing the
   * standbys) or, with `afterFailover`, once another leads. The failover is
   * measured either way.
   */
  private async killLeader(
    kind: FaultKind,
    x: LeaderFaultContext,
    restMs: number,
    afterFailover: boolean,
    writeStart = true,
  ): Promise<void> {
    const { k, epoch } = await this.currentLeader();
    const m = this.pg.members[k]!;
    if (writeStart) x.start(m.name, m.child?.pid);
    const t0 = Date.now();
    await this.pg.kill(k);
    const failover = this.failover(kind, m.name, epoch, t0, x.history);
    if (afterFailover) await failover;
    await sleep(restMs);
    await this.pg.start(k);
    await failover;
  }

  /** Applies a fault to the leader, holds it until another leads (and 0-2 s more), heals. */
  private async holdLeader(
    kind: FaultKind,
    x: LeaderFaultContext,
    f: { apply: (k: number) => void; heal: (k: number) => void },
  ): Promise<void> {
    const { k, epoch } = await this.currentLeader();
    const m = this.pg.members[k]!;
    x.start(m.name, m.child?.pid);
    const t0 = Date.now();
    f.apply(k);
    try {
      await this.failover(kind, m.name, epoch, t0, x.history);
      await sleep(x.between(0, 2000));
    } finally {
      f.heal(k);
    }
  }

  private async failover(
    kind: FaultKind,
    target: string,
    from: number,
    t0: number,
    history: HistoryWriter,
  ): Promise<void> {
    const l = await this.pg.awaitLeader({ newerThan: from, timeoutMs: FAILOVER_LIMIT_MS });
    history.write({
      type: 'failover',
      kind,
      target,
      from,
      epoch: l?.epoch ?? null,
      leader: l ? this.pg.members[l.k]!.name : null,
      ms: (l?.at ?? Date.now()) - t0,
    });
  }
}
