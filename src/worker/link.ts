import type { Hello, RunRef, Welcome } from '../protocol/worker.js';
import { Connection } from './connection.js';
import { reconnectDelayMs, workerUrl, type ResolvedWorkerOptions } from './options.js';
import { encode, type Encoded, type Inbound } from './wire.js';

/** Silence allowed before the first welcome says how long deadAfterMs really is. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface LinkHooks {
  /** The hello to open each new connection with. */
  hello(): Hello;
  /** Every well-formed message of the current connection, welcome included, in order (and unreadable runs). */
  onMessage(m: Inbound): void;
  /**
   * Called as each beat is built: the worker sends again what waited too
   * long for an answer, and returns the runs it holds (running, or with a
   * report not acked).
   */
  beat(): RunRef[];
  onDisconnected(info: { url: string; code: number; reason: string }): void;
}

/**
 * The worker's line to the coordinator, across reconnects: one Connection at
 * a time, hello on open, beats after welcome, and reconnects with backoff and
 * jitter, trying the URLs in turn, until stop(). Run messages go out only
 * once the current connection has been welcomed.
 */
export class CoordinatorLink {
  #conn: Connection | null = null;
  #ready = false;
  #stopped = false;
  #urlIndex = 0;
  #failures = 0;
  #deadAfterMs = HANDSHAKE_TIMEOUT_MS;
  #timer: NodeJS.Timeout | null = null;
  /** The leader a standby named: the next connection goes there. */
  #redirect: string | null = null;
  /** Redirects followed in a row without a welcome (a loop of stale answers must not spin). */
  #redirects = 0;

  constructor(
    private readonly o: Pick<
      ResolvedWorkerOptions,
      'urls' | 'token' | 'reconnectMinMs' | 'reconnectMaxMs' | 'logger'
    >,
    private readonly hooks: LinkHooks,
  ) {}

  /** Welcomed on the current connection. */
  get ready(): boolean {
    return this.#ready;
  }

  connect(): void {
    this.#timer = null;
    if (this.#stopped || this.#conn !== null) return;
    const urls = this.o.urls;
    const url = this.#redirect ?? urls[this.#urlIndex % urls.length] ?? urls[0] ?? '';
    this.#redirect = null;
    let welcomed = false;
    const conn: Connection = new Connection(
      { url, token: this.o.token, deadAfterMs: this.#deadAfterMs, logger: this.o.logger },
      {
        onOpen: () => {
          if (this.#conn === conn) conn.send(encode(this.hooks.hello()));
        },
        onMessages: (messages) => {
          for (const m of messages) {
            if (this.#conn !== conn) return;
            if (m.t === 'welcome') {
              welcomed = true;
              this.#welcomed(conn, m);
            }
            this.hooks.onMessage(m);
          }
        },
        onClose: (info) => {
          if (this.#conn !== conn) return;
          this.#conn = null;
          this.#ready = false;
          if (info.opened) this.hooks.onDisconnected({ url, code: info.code, reason: info.reason });
          if (this.#stopped) return;
          if (info.leader !== null && !welcomed && this.#redirects < 3) {
            const to = toWorkerUrl(info.leader);
            if (to !== null && to !== url) {
              this.#redirects += 1;
              this.#redirect = to;
              this.o.logger('info', 'the coordinator is a standby; going to the leader', {
                url,
                leader: to,
              });
              this.#timer = setTimeout(() => this.connect(), 0);
              return;
            }
          }
          if (!welcomed) {
            this.#failures += 1;
            this.#urlIndex += 1;
          }
          const delayMs = reconnectDelayMs(this.#failures, this.o, Math.random);
          // A worker that cannot get in says so at once and then every tenth try, not on every one.
          const loud = welcomed || this.#failures % 10 === 1;
          this.o.logger(loud ? 'warn' : 'info', 'no connection to the coordinator; reconnecting', {
            url,
            code: info.code,
            error: conn.lastError,
            delayMs,
          });
          this.#timer = setTimeout(() => this.connect(), delayMs);
        },
      },
    );
    this.#conn = conn;
  }

  /** Sends on the current connection if it has been welcomed; otherwise drops `m`. */
  send(m: Encoded): void {
    if (this.#ready) this.#conn?.send(m);
  }

  /** No more reconnects; flushes what is queued and closes the socket. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ready = false;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#conn?.close(1000, 'worker stopped');
    this.#conn = null;
  }

  #welcomed(conn: Connection, w: Welcome): void {
    this.#ready = true;
    this.#failures = 0;
    this.#redirects = 0;
    this.#deadAfterMs = w.deadAfterMs;
    // Each beat says how many frames this connection brought and what the worker holds
    // (core/deadline.ts lostRuns): a run sent in a frame received but not held was lost.
    conn.startBeats(
      w.heartbeatMs,
      () => encode({ t: 'beat', frames: conn.framesReceived, held: this.hooks.beat() }),
      w.deadAfterMs,
    );
  }
}

/** The worker URL of a leader's advertised URL, or null when it is not one. */
function toWorkerUrl(leader: string): string | null {
  try {
    return workerUrl(leader);
  } catch {
    return null;
  }
}
