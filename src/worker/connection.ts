import WebSocket from 'ws';
import { DEFAULT_LIMITS } from '../protocol/limits.js';
import type { Logger } from './options.js';
import { packFrames, parseCoordinatorFrame, type Encoded, type Inbound } from './wire.js';

/** Frames are cut at about this size so no one frame grows without bound; a larger message goes alone. */
export const FRAME_SOFT_LIMIT_BYTES = 1024 * 1024;

export interface ConnectionHooks {
  onOpen(): void;
  onMessages(messages: Inbound[]): void;
  /**
   * Called once, whether the socket ever opened or not. `leader`: the upgrade
   * was refused by a standby coordinator that named the leader's URL.
   */
  onClose(info: { opened: boolean; code: number; reason: string; leader: string | null }): void;
}

export interface ConnectionOptions {
  url: string;
  token: string | null;
  /** Silence (nothing at all from the coordinator) after which the socket is dropped. */
  deadAfterMs: number;
  logger: Logger;
}

/**
 * One WebSocket to one coordinator. Batches what is sent in the same event
 * loop turn into one frame, beats on request and drops the socket when the
 * coordinator goes silent for deadAfterMs. It never reconnects: the worker
 * opens a new Connection.
 */
export class Connection {
  readonly #ws: WebSocket;
  readonly #o: ConnectionOptions;
  #queue: Encoded[] = [];
  #flushScheduled = false;
  #opened = false;
  #closed = false;
  #silence: NodeJS.Timeout | null = null;
  #beats: NodeJS.Timeout | null = null;
  #closedPromise: Promise<void>;
  #lastError: string | null = null;
  #leader: string | null = null;
  /** The coordinator's maxDepth; the default until its welcome. */
  #maxDepth = DEFAULT_LIMITS.maxDepth;
  /** Frames received on this socket, readable or not: the beat reports it (Beat.frames). */
  #framesReceived = 0;

  constructor(o: ConnectionOptions, hooks: ConnectionHooks) {
    this.#o = o;
    const headers: Record<string, string> = {};
    if (o.token !== null) headers.authorization = `Bearer ${o.token}`;
    this.#ws = new WebSocket(o.url, { headers, handshakeTimeout: o.deadAfterMs });
    let closed!: () => void;
    this.#closedPromise = new Promise((resolve) => (closed = resolve));
    this.#ws.on('open', () => {
      this.#opened = true;
      this.#armSilence();
      this.#guard(() => hooks.onOpen());
    });
    this.#ws.on('message', (data: WebSocket.RawData) => {
      this.#heard();
      // Counted before parsing: the runs of a frame that cannot be read are then known lost.
      this.#framesReceived++;
      const parsed = parseCoordinatorFrame(rawToString(data), this.#maxDepth);
      // The welcome says how deep the coordinator lets inputs go; later frames are read with that.
      for (const m of parsed.messages) if (m.t === 'welcome') this.#maxDepth = m.maxDepth;
      for (const p of parsed.problems) {
        o.logger('warn', 'ignored a malformed message from the coordinator', { problem: p });
      }
      if (parsed.messages.length > 0) this.#guard(() => hooks.onMessages(parsed.messages));
    });
    // A refused upgrade: a standby names the leader in a header (see coordinator.ts LEADER_HEADER).
    this.#ws.on('unexpected-response', (_req, res) => {
      const leader = res.headers['regroup-leader'];
      this.#leader = typeof leader === 'string' && leader.length > 0 ? leader : null;
      res.resume();
      this.#ws.terminate();
      this.#lastError = `Unexpected server response: ${res.statusCode ?? 0}`;
    });
    this.#ws.on('ping', () => this.#heard());
    this.#ws.on('pong', () => this.#heard());
    this.#ws.on('error', (e: Error) => {
      if (this.#lastError === null || this.#opened) this.#lastError = e.message;
      o.logger(this.#opened ? 'warn' : 'info', 'coordinator connection error', {
        url: o.url,
        error: e.message,
      });
    });
    this.#ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = true;
      this.#stopTimers();
      this.#queue = [];
      closed();
      this.#guard(() =>
        hooks.onClose({
          opened: this.#opened,
          code,
          reason: reason.toString('utf8'),
          leader: this.#leader,
        }),
      );
    });
  }

  get url(): string {
    return this.#o.url;
  }

  /** The last socket error, e.g. `Unexpected server response: 401`. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** Frames received on this socket so far, including any that could not be parsed. */
  get framesReceived(): number {
    return this.#framesReceived;
  }

  get isOpen(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /** Queues a message; everything queued in this turn goes out in one frame. Dropped when not open. */
  send(m: Encoded): void {
    if (!this.isOpen) return;
    this.#queue.push(m);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  /** Sends `beat()` every `heartbeatMs` from now on; also sets the silence limit. */
  startBeats(heartbeatMs: number, beat: () => Encoded, deadAfterMs: number): void {
    if (this.#closed) return;
    if (this.#beats !== null) clearInterval(this.#beats);
    this.#beats = setInterval(() => this.send(beat()), heartbeatMs);
    this.#o.deadAfterMs = deadAfterMs;
    this.#armSilence();
  }

  /** Sends what is queued, then closes; terminates if the close handshake hangs. */
  async close(code = 1000, reason = ''): Promise<void> {
    this.#flush();
    if (this.#ws.readyState === WebSocket.CONNECTING) {
      this.#ws.terminate();
    } else if (!this.#closed) {
      this.#ws.close(code, reason);
      const t = setTimeout(() => this.#ws.terminate(), 1000);
      await this.#closedPromise;
      clearTimeout(t);
    }
    await this.#closedPromise;
  }

  /** Drops the socket at once. */
  terminate(): void {
    this.#ws.terminate();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    if (queue.length === 0 || !this.isOpen) return;
    for (const frame of packFrames(queue, FRAME_SOFT_LIMIT_BYTES)) {
      this.#ws.send(frame, (e) => {
        if (e) this.#o.logger('debug', 'a frame was not sent', { error: e.message });
      });
    }
  }

  /** A bug in the worker must not become an uncaught exception inside a socket event. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#o.logger('error', 'worker bug while handling a socket event', {
        error: e instanceof Error ? (e.stack ?? e.message) : String(e),
      });
    }
  }

  #heard(): void {
    this.#silence?.refresh();
  }

  #armSilence(): void {
    if (this.#silence !== null) clearTimeout(this.#silence);
    this.#silence = setTimeout(() => {
      this.#o.logger('warn', 'nothing from the coordinator for deadAfterMs; reconnecting', {
        url: this.#o.url,
        deadAfterMs: this.#o.deadAfterMs,
      });
      this.#ws.terminate();
    }, this.#o.deadAfterMs);
  }

  #stopTimers(): void {
    if (this.#silence !== null) clearTimeout(this.#silence);
    if (this.#beats !== null) clearInterval(this.#beats);
    this.#silence = null;
    this.#beats = null;
  }
}

function rawToString(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
