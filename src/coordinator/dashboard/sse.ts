/**
 * Server-sent events for the dashboard: every client first gets a snapshot,
 * then updates, coalesced so that at most one goes out per `minGapMs` however
 * many changes arrive, and nothing at all while nothing changes (but a
 * comment every `heartbeatMs`, so proxies keep the stream open). No timer
 * runs while no client is connected.
 */

/** Where one client's events go (a ServerResponse, or a fake in tests). */
export interface Sink {
  /** Writes text; false when the client is not keeping up (wait for `drained`). */
  write(text: string): boolean;
  end(): void;
}

export interface SseTimers {
  now(): number;
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: SseTimers = {
  now: () => performance.now(),
  set: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SseHubOptions<S, U> {
  /** The full state, for a new client (or one that fell behind). */
  snapshot(): S;
  /** What changed since the last update; null when nothing did. */
  update(): U | null;
  minGapMs?: number;
  heartbeatMs?: number;
  timers?: SseTimers;
}

interface Client {
  sink: Sink;
  /** Fell behind (a write returned false): gets a fresh snapshot once drained. */
  behind: boolean;
}

export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class SseHub<S, U> {
  private readonly clients = new Set<Client>();
  private readonly minGapMs: number;
  private readonly heartbeatMs: number;
  private readonly timers: SseTimers;
  private flushTimer: unknown = null;
  private beatTimer: unknown = null;
  private lastFlush = -Infinity;
  private stopped = false;
  updatesSent = 0;

  constructor(private readonly o: SseHubOptions<S, U>) {
    this.minGapMs = o.minGapMs ?? 500;
    this.heartbeatMs = o.heartbeatMs ?? 15_000;
    this.timers = o.timers ?? realTimers;
  }

  get size(): number {
    return this.clients.size;
  }

  /** Adds a client and sends it the snapshot; returns what to call when it goes away. */
  add(sink: Sink): { drained: () => void; remove: () => void } {
    const c: Client = { sink, behind: false };
    if (this.stopped) {
      sink.end();
      return { drained: () => {}, remove: () => {} };
    }
    this.clients.add(c);
    // The update buffer is shared: take what is pending first, so this client's
    // snapshot includes it and the others still get it as an update.
    this.send(c, `retry: 2000\n${sseEvent('snapshot', this.o.snapshot())}`);
    this.armHeartbeat();
    return {
      drained: () => {
        if (!c.behind || !this.clients.has(c)) return;
        c.behind = false;
        this.send(c, sseEvent('snapshot', this.o.snapshot()));
      },
      remove: () => this.remove(c),
    };
  }

  /** Something changed: an update goes out within minGapMs (one for many changes). */
  changed(): void {
    if (this.stopped || this.clients.size === 0 || this.flushTimer !== null) return;
    const wait = Math.max(0, this.lastFlush + this.minGapMs - this.timers.now());
    this.flushTimer = this.timers.set(() => this.flush(), wait);
  }

  /** Ends every stream and every timer. */
  stop(): void {
    this.stopped = true;
    for (const c of [...this.clients]) {
      this.clients.delete(c);
      c.sink.end();
    }
    this.disarm();
  }

  private flush(): void {
    this.flushTimer = null;
    this.lastFlush = this.timers.now();
    const u = this.o.update();
    if (u === null || this.clients.size === 0) return;
    this.updatesSent++;
    const text = sseEvent('update', u);
    for (const c of this.clients) if (!c.behind) this.send(c, text);
  }

  private send(c: Client, text: string): void {
    if (!c.sink.write(text)) c.behind = true;
  }

  private remove(c: Client): void {
    if (!this.clients.delete(c)) return;
    if (this.clients.size === 0) this.disarm();
  }

  private armHeartbeat(): void {
    if (this.beatTimer !== null) return;
    const beat = (): void => {
      this.beatTimer = null;
      if (this.stopped || this.clients.size === 0) return;
      for (const c of this.clients) if (!c.behind) this.send(c, ': keep-alive\n\n');
      this.beatTimer = this.timers.set(beat, this.heartbeatMs);
    };
    this.beatTimer = this.timers.set(beat, this.heartbeatMs);
  }

  private disarm(): void {
    if (this.flushTimer !== null) this.timers.clear(this.flushTimer);
    if (this.beatTimer !== null) this.timers.clear(this.beatTimer);
    this.flushTimer = null;
    this.beatTimer = null;
  }
}
