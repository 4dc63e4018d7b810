/**
 * Leader election among coordinators sharing one PostgreSQL database.
 *
 * - Whoever holds a session-level advisory lock (on a connection of its own,
 *   apart from the store's pool) may lead. Taking office increments
 *   `leader.epoch`; every tick of the store checks that epoch under a share
 *   lock, so a deposed leader cannot write (see PostgresStore.beginTerm).
 * - The leader renews a lease in `leader_lease` about every second. If it
 *   cannot renew for leaseMs - marginMs it steps down on its own, before the
 *   lease runs out in the database's clock.
 * - A standby polls the lock. When a leader dies, PostgreSQL drops its session
 *   and the lock with it, so a standby leads within about pollMs. When a leader
 *   is cut off from the database instead, its session may live on (a half-open
 *   connection holds the lock); once its lease has run out, a standby
 *   terminates that session (and, when it takes office, every other session of
 *   the old leader, which may hold the epoch row mid-tick), then takes the lock.
 *
 * Terminating another coordinator's session needs the same database role (or
 * pg_signal_backend); all coordinators of one store use the same role.
 */
import pg from 'pg';
import type { Candidate, LeaderState, Leadership } from './leadership.js';
import { lockKey } from './postgres-keys.js';

export type LeaderLogger = (
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export interface PostgresLeadershipOptions {
  url: string;
  /** The store's schema. Default 'regroup'. */
  schema?: string;
  /** application_name of this coordinator's connections: the store's pool must use the same. */
  applicationName: string;
  /** How often a standby tries to take the lock. Default 500 ms. */
  pollMs?: number;
  /** How often the leader renews its lease. Default 1000 ms. */
  renewMs?: number;
  /** How long a lease lasts without renewal. Default 4000 ms. */
  leaseMs?: number;
  /** The leader steps down this long before its lease would run out. Default 1000 ms. */
  marginMs?: number;
  /** A query on the election connection that takes longer fails. Default 2000 ms. */
  queryTimeoutMs?: number;
  logger?: LeaderLogger;
}

interface LeaderRow {
  epoch: string;
  holder: string | null;
  address: string | null;
  pid: number | null;
  app_name: string | null;
  expired: boolean | null;
}

const STANDBY: LeaderState = { role: 'standby', epoch: null, leaderUrl: null, leaderId: null };

export class PostgresLeadership implements Leadership {
  private readonly o: Required<Omit<PostgresLeadershipOptions, 'logger'>> & {
    logger: LeaderLogger;
  };
  private readonly key: string;
  private me: Candidate | null = null;
  private onChange: ((s: LeaderState) => Promise<void>) | null = null;
  private client: pg.Client | null = null;
  private clientBroken = false;
  private state: LeaderState = STANDBY;
  private notified: LeaderState | null = null;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private deadline: NodeJS.Timeout | null = null;

  constructor(options: PostgresLeadershipOptions) {
    this.o = {
      schema: 'regroup',
      pollMs: 500,
      renewMs: 1000,
      leaseMs: 4000,
      marginMs: 1000,
      queryTimeoutMs: 2000,
      logger: () => {},
      ...options,
    };
    if (this.o.leaseMs - this.o.marginMs <= this.o.renewMs) {
      throw new Error(
        `leaseMs (${this.o.leaseMs}) - marginMs (${this.o.marginMs}) must be larger than renewMs (${this.o.renewMs})`,
      );
    }
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.o.schema)) {
      throw new Error(`schema must match [a-z_][a-z0-9_]*, got ${JSON.stringify(this.o.schema)}`);
    }
    this.key = lockKey(this.o.schema, 'leader');
  }

  /** The last state told to the coordinator. */
  get current(): LeaderState {
    return { ...this.state };
  }

  start(me: Candidate, onChange: (s: LeaderState) => Promise<void>): void {
    if (this.loop) throw new Error('leadership already started');
    this.me = me;
    this.onChange = onChange;
    this.loop = this.run();
  }

  lost(reason: string): void {
    if (this.state.role === 'leader') this.stepDown(reason);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    if (this.state.role === 'leader') this.stepDown('stopping');
    await this.dropClient();
    await this.chain;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.step();
      } catch (e) {
        this.o.logger('warn', 'leader election: database not reachable', {
          err: (e as Error).message,
        });
        await this.dropClient();
        // A leader that cannot reach the database keeps office until its deadline timer fires.
        if (this.state.role === 'standby') this.tell(STANDBY);
      }
      if (this.stopped) break;
      await this.sleep(this.state.role === 'leader' ? this.o.renewMs : this.o.pollMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async step(): Promise<void> {
    const c = await this.connection();
    if (this.state.role === 'leader') return this.renew(c);
    const got = await c.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS got', [
      this.key,
    ]);
    if (got.rows[0]?.got === true) return this.takeOver(c);
    const r = await c.query<LeaderRow>(
      `SELECT l.epoch::text AS epoch, l.holder, l.address, s.pid, s.app_name,
              s.expires_at < clock_timestamp() AS expired
         FROM leader l CROSS JOIN leader_lease s`,
    );
    const row = r.rows[0];
    if (!row) throw new Error('the leader tables are empty: the schema was not migrated');
    if (row.expired === true && row.pid !== null) {
      // The holder stopped renewing but its session still holds the lock: end that session.
      const t = await c.query<{ ended: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
          WHERE pid = $1 AND application_name = $2 AND datname = current_database()`,
        [row.pid, row.app_name],
      );
      if (t.rows[0]?.ended === true) {
        this.o.logger('warn', 'the leader let its lease run out: ended its lock session', {
          leader: row.holder,
          pid: row.pid,
        });
        // The lock goes with the session, a moment later: try again now, not a poll later.
        await new Promise((r) => setTimeout(r, 50));
        const again = await c.query<{ got: boolean }>(
          'SELECT pg_try_advisory_lock($1::bigint) AS got',
          [this.key],
        );
        if (again.rows[0]?.got === true) return this.takeOver(c);
      }
    }
    const live = row.expired === false && row.holder !== null;
    this.tell({
      role: 'standby',
      epoch: Number(row.epoch),
      leaderUrl: live ? row.address : null,
      leaderId: live ? row.holder : null,
    });
  }

  /** Holds the lock: bump the epoch, write the lease, then lead. */
  private async takeOver(c: pg.Client): Promise<void> {
    const me = this.me!;
    let epoch: number;
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL lock_timeout = ${Math.max(100, this.o.queryTimeoutMs - 200)}`);
      // The old leader's other sessions may hold the epoch row (a tick in flight): end them.
      await c.query(
        `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a, leader_lease l
          WHERE l.app_name IS NOT NULL AND a.application_name = l.app_name
            AND l.app_name <> $1 AND a.pid <> pg_backend_pid() AND a.datname = current_database()`,
        [this.o.applicationName],
      );
      const r = await c.query<{ epoch: string }>(
        `UPDATE leader SET epoch = epoch + 1, holder = $1, address = $2, since = $3
          WHERE id = 1 RETURNING epoch::text AS epoch`,
        [me.id, me.url, Date.now()],
      );
      await c.query(
        `UPDATE leader_lease SET holder = $1, pid = pg_backend_pid(), app_name = $2,
                expires_at = clock_timestamp() + $3 * interval '1 millisecond'
          WHERE id = 1`,
        [me.id, this.o.applicationName, this.o.leaseMs],
      );
      await c.query('COMMIT');
      epoch = Number(r.rows[0]?.epoch);
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    }
    this.armDeadline(Date.now());
    this.o.logger('info', 'took the leadership', { epoch });
    this.tell({ role: 'leader', epoch, leaderUrl: me.url, leaderId: me.id });
  }

  private async renew(c: pg.Client): Promise<void> {
    const sentAt = Date.now();
    const r = await c.query(
      `UPDATE leader_lease SET expires_at = clock_timestamp() + $1 * interval '1 millisecond'
        WHERE id = 1 AND holder = $2 AND pid = pg_backend_pid()`,
      [this.o.leaseMs, this.me!.id],
    );
    if (this.state.role !== 'leader') return;
    if (r.rowCount === 1) this.armDeadline(sentAt);
    else this.stepDown('another coordinator holds the lease');
  }

  /** Steps down at sentAt + leaseMs - marginMs unless a renewal comes first. */
  private armDeadline(sentAt: number): void {
    if (this.deadline) clearTimeout(this.deadline);
    const ms = Math.max(0, sentAt + this.o.leaseMs - this.o.marginMs - Date.now());
    this.deadline = setTimeout(() => this.stepDown('could not renew the lease in time'), ms);
    this.deadline.unref();
  }

  private stepDown(reason: string): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    if (this.state.role !== 'leader') return;
    this.o.logger(reason === 'stopping' ? 'info' : 'warn', 'stepping down', {
      reason,
      epoch: this.state.epoch,
    });
    this.tell(STANDBY);
    // Dropping the election connection lets go of the lock (when the database still hears us).
    void this.dropClient();
    this.wake?.();
  }

  private tell(s: LeaderState): void {
    this.state = s;
    const n = this.notified;
    if (
      n &&
      n.role === s.role &&
      n.epoch === s.epoch &&
      n.leaderUrl === s.leaderUrl &&
      n.leaderId === s.leaderId
    )
      return;
    this.notified = { ...s };
    const fn = this.onChange;
    if (!fn) return;
    this.chain = this.chain
      .then(() => fn({ ...s }))
      .catch((e: unknown) =>
        this.o.logger('error', 'a leadership listener failed', { err: (e as Error).message }),
      );
  }

  private async connection(): Promise<pg.Client> {
    if (this.client && !this.clientBroken) return this.client;
    await this.dropClient();
    const c = new pg.Client({
      connectionString: this.o.url,
      application_name: this.o.applicationName,
      connectionTimeoutMillis: this.o.queryTimeoutMs,
      query_timeout: this.o.queryTimeoutMs,
      keepAlive: true,
      options: `-c search_path=${this.o.schema}`,
    });
    c.on('error', (e: Error) => {
      this.clientBroken = true;
      this.o.logger('debug', 'leader election connection error', { err: e.message });
    });
    this.client = c;
    this.clientBroken = false;
    await c.connect();
    return c;
  }

  private async dropClient(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (!c) return;
    // end() waits for the server; a cut connection must not hold us up: drop the socket then.
    const ended = await Promise.race([
      c.end().then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
    ]);
    if (!ended) {
      (
        c as unknown as { connection?: { stream?: { destroy?: () => void } } }
      ).connection?.stream?.destroy?.();
    }
  }
}
