/**
 * Bearer tokens: one for clients (the HTTP API), one for workers (the
 * WebSocket). Compared in constant time. Repeated failures from one address
 * are slowed down, so guessing costs time.
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

export class Auth {
  readonly throttle: FailureThrottle;

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
    const given = bearer(req);
    if (given !== null && tokensEqual(given, expected)) {
      this.throttle.succeeded(addr);
      return;
    }
    this.throttle.failed(addr);
    const delay = this.throttle.delayFor(addr);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const what =
      role === 'client'
        ? 'the client token (Client({ token }), --token or REGROUP_TOKEN)'
        : 'the worker token (--token or REGROUP_WORKER_TOKEN)';
    throw new RegroupError(
      'unauthorized',
      given === null
        ? `missing "Authorization: Bearer <token>": send ${what}`
        : `wrong token: send ${what}`,
    );
  }
}
