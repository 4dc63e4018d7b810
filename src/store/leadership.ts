/**
 * Leadership among coordinators that share one store. With SQLite there is
 * one coordinator and no Leadership at all: it always leads. With PostgreSQL
 * any number of coordinators campaign; one leads, the others stand by and
 * point clients and workers at the leader.
 */
export type Role = 'leader' | 'standby';

export interface LeaderState {
  role: Role;
  /** The epoch this coordinator took (leader), or the current leader's epoch as last read (standby); null when unknown. */
  epoch: number | null;
  /** Where clients and workers find the leader; null when no leader is known. */
  leaderUrl: string | null;
  /** The leader's coordinator id; null when unknown. */
  leaderId: string | null;
}

export interface Candidate {
  /** This coordinator's id, unique among the coordinators of one store. */
  id: string;
  /** The URL this coordinator is reached at by clients and workers. */
  url: string;
}

export interface Leadership {
  /**
   * Starts campaigning. `onChange` is called with the first state as soon as
   * it is known, and again whenever the role, the epoch or the known leader
   * changes. Calls are never concurrent: the next waits for the previous
   * promise to settle.
   */
  start(me: Candidate, onChange: (s: LeaderState) => Promise<void>): void;
  /** The store refused a write (`not_leader`) or taking office failed: step down now and campaign again. */
  lost(reason: string): void;
  /** Stops campaigning and lets go of the leadership if held. */
  stop(): Promise<void>;
}
