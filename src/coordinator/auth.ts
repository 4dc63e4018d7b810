/**
 * Bearer tokens: one for clients (the HTTP API), one for workers (the
 * WebSocket). Compared in constant time. Repeated failures from one address
 * are slowed down, so guessing costs time; and once an address is slowed
 * down, its token checks wait in line, one at a time, each after the delay,
 * before the token is even compared, so sending guesses in parallel does not
 * get more of them answered. At most MAX_WAITING checks wait per address;
 * beyond that the answer is `too_many_requests` at once, with no comparison.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { RegroupError } from '../core/errors.js';

export type Role = 'client' | 'worker';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Equal-length digests, so the comparison takes the same time whatever the token. */
export function tokensEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export function bearer(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

export interface Tokens {
  client: string | null;
  worker: string | null;
}

/** Counts failures per address; after a few, each answer waits longer (up to maxDelayMs). */
export class FailureThrottle {
  private readonly fails = new Map<string, { n: number; at: number }>();

  constructor(
    private readonly now: () => number,
    private readonly freeFailures = 3,
    private readonly maxDelayMs = 5000,
    private readonly forgetAfterMs = 60_000,
  ) {}

  /** How long to hold the next answer to this address. */
  delayFor(addr: string): number {
    const f = this.fails.get(addr);
    if (!f || this.now() - f.at > this.forgetAfterMs) return 0;
    if (f.n <= this.freeFailures) return 0;
    return Math.min(this.maxDelayMs, 100 * 2 ** (f.n - this.freeFailures - 1));
  }

  failed(addr: string): void {
    const now = this.now();
    const f = this.fails.get(addr);
    const n = f && now - f.at <= this.forgetAfterMs ? f.n + 1 : 1;
    this.fails.set(addr, { n, at: now });
    if (this.fails.size > 10_000) this.prune(now);
  }

  succeeded(addr: string): void {
    this.fails.delete(addr);
  }

  private prune(now: number): void {
    for (const [k, v] of this.fails) if (now - v.at > this.forgetAfterMs) this.fails.delete(k);
    // Still too many (an address-spraying attack): keep the newest half.
    if (this.fails.size > 10_000) {
      const keep = [...this.fails.entries()].sort((a, b) => b[1].at - a[1].at).slice(0, 5000);
      this.fails.clear();
      for (const [k, v] of keep) this.fails.set(k, v);
    }
  }
}

/** Token checks waiting in line per throttled address; more are refused at once. */
export const MAX_WAITING = 16;

export class Auth {
  readonly throttle: FailureThrottle;
  /** Per throttled address: the end of its line, and how many wait in it. */
  private readonly lines = new Map<string, { tail: Promise<void>; waiting: number }>();

  constructor(
    private readonly tokens: Tokens,
    now: () => number,
  ) {
    this.throttle = new FailureThrottle(now);
  }

  required(role: Role): boolean {
    return this.tokens[role] !== null;
  }

  /** Whether the request carries the right token for `role` (false when none is set); no throttling, no refusal. */
  holds(req: IncomingMessage, role: Role): boolean {
    const expected = this.tokens[role];
    const given = bearer(req);
    return expected !== null && given !== null && tokensEqual(given, expected);
  }

  /**
   * Checks the request's bearer token for `role`. Resolves when allowed;
   * rejects with `unauthorized` after the throttle's delay when not.
   */
  async check(req: IncomingMessage, role: Role): Promise<void> {
    const expected = this.tokens[role];
    if (expected === null) return;
    const addr = req.socket.remoteAddress ?? 'unknown';
    // Decided before anything is compared: a burst of guesses is in line by its fourth.
    const release = this.throttle.delayFor(addr) > 0 ? await this.takeTurn(addr) : null;
    try {
      if (release) await sleep(this.throttle.delayFor(addr));
      this.compare(req, role, expected, addr);
    } finally {
      release?.();
    }
  }

  /** Waits until this check is first in its address's line; resolves with the function that lets the next one go. */
  private async takeTurn(addr: string): Promise<() => void> {
    const line = this.lines.get(addr) ?? { tail: Promise.resolve(), waiting: 0 };
    if (line.waiting >= MAX_WAITING) {
      throw new RegroupError(
        'too_many_requests',
        `${MAX_WAITING} token checks from ${addr} are already waiting after failed ones; send the right token, one request at a time`,
      );
    }
    line.waiting++;
    this.lines.set(addr, line);
    const before = line.tail;
    let release!: () => void;
    line.tail = new Promise<void>((r) => (release = r));
    await before;
    return () => {
      line.waiting--;
      if (line.waiting === 0 && this.lines.get(addr) === line) this.lines.delete(addr);
      release();
    };
  }

  /** Returns when the token is right; otherwise records the failure and throws `unauthorized`. */
  private compare(req: IncomingMessage, role: Role, expected: string, addr: string): void {
    const given = bearer(req);
    if (given !== null && tokensEqual(given, expected)) {
      this.throttle.succeeded(addr);
      return;
    }
    this.throttle.failed(addr);
    throw this.refusal(role, given);
  }

  private refusal(role: Role, given: string | null): RegroupError {
    const what =
      role === 'client'
        ? 'the client token (Client({ token }), --token or REGROUP_TOKEN)'
        : 'the worker token (--token or REGROUP_WORKER_TOKEN)';
    return new RegroupError(
      'unauthorized',
      given === null
        ? `missing "Authorization: Bearer <token>": send ${what}`
        : `wrong token: send ${what}`,
    );
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
