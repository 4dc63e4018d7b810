/**
 * The coordinator's edge rules: which Host and Origin a request may carry.
 * Pure functions of the request's headers and the coordinator's set-up, so
 * that the HTTP server, the WebSocket upgrade and the tests share one rule.
 *
 * - Host (DNS rebinding): a page on `http://rebind.attacker.example:7070`
 *   whose name the attacker points at 127.0.0.1 reaches the coordinator as
 *   the same origin. Its requests carry that name in `Host`. A Host is
 *   accepted when it is an IP literal, a loopback name (`localhost`,
 *   `*.localhost`), the advertised URL's host, this machine's host name, or
 *   listed with `--allow-host`. An attacker cannot make a browser send an IP
 *   literal or one of those names for a page of its own.
 * - Origin (cross-site requests and WebSockets from a web page): browsers
 *   send `Origin` on every WebSocket and every POST. It is accepted when it is
 *   the coordinator's own origin (the scheme and the Host of the request
 *   itself, the Host being accepted as above) or listed with
 *   `--allow-origin`. Requests without Origin (curl, the SDK, workers) pass.
 * - `Sec-Fetch-Site: cross-site` on a state-changing request without an
 *   accepted Origin is refused too (belt and braces for browsers that omit
 *   Origin).
 */
import { isIP } from 'node:net';
import { RegroupError } from '../core/errors.js';

export interface EdgePolicy {
  /** Extra host names accepted in `Host` (lower case, no port). */
  allowHosts: readonly string[];
  /** Origins accepted besides the coordinator's own (`scheme://host[:port]`, lower case). */
  allowOrigins: readonly string[];
  /** The advertised URL's host name, when there is one. */
  advertisedHost: string | null;
  /** This machine's host name (os.hostname()), lower case. */
  machineHost: string | null;
  /** Whether the coordinator speaks TLS (its own origin is https). */
  tls: boolean;
}

/** The host name of a `Host` header value, lower case, without port or IPv6 brackets; null when malformed. */
export function hostName(host: string): string | null {
  const h = host.trim().toLowerCase();
  if (h === '') return null;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    return h.slice(1, end);
  }
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(h);
  return m ? m[1]! : null;
}

function isLoopbackName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost');
}

/** Whether a `Host` header names this coordinator (see the module comment). */
export function hostAllowed(host: string | undefined, p: EdgePolicy): boolean {
  // HTTP/1.1 requires Host; an HTTP/1.0 request without one is not a browser's.
  if (host === undefined) return true;
  const name = hostName(host);
  if (name === null) return false;
  if (isIP(name) !== 0 || isLoopbackName(name)) return true;
  if (name === p.advertisedHost || name === p.machineHost) return true;
  return p.allowHosts.includes(name);
}

/** Normalizes an origin (`scheme://host[:port]`) for comparison; null when it is not one. */
export function normalizeOrigin(origin: string): string | null {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  return u.origin.toLowerCase();
}

/** Whether an `Origin` header may talk to this coordinator (see the module comment). */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  p: EdgePolicy,
): boolean {
  if (origin === undefined) return true;
  const o = normalizeOrigin(origin);
  if (o === null) return false; // "null" (sandboxed frames, file://) and garbage
  if (p.allowOrigins.includes(o)) return true;
  if (host === undefined || !hostAllowed(host, p)) return false;
  const own = normalizeOrigin(`${p.tls ? 'https' : 'http'}://${host}`);
  return own !== null && own === o;
}

export interface EdgeRequest {
  method: string;
  host: string | undefined;
  origin: string | undefined;
  /** As sent; case and repeats (joined with commas) do not hide `cross-site`. */
  secFetchSite: string | string[] | undefined;
  /** A WebSocket upgrade. */
  upgrade: boolean;
}

/** Throws `forbidden_host` or `forbidden_origin` when the request must be refused at the edge. */
export function checkEdge(r: EdgeRequest, p: EdgePolicy): void {
  if (!hostAllowed(r.host, p)) {
    throw new RegroupError(
      'forbidden_host',
      `Host "${String(r.host).slice(0, 100)}" does not name this coordinator (a DNS rebinding attempt, or a name it does not know): use its IP address, localhost or its advertised URL, or start it with --allow-host <name>`,
    );
  }
  const originOk = originAllowed(r.origin, r.host, p);
  if (!originOk) {
    throw new RegroupError(
      'forbidden_origin',
      `Origin "${String(r.origin).slice(0, 100)}" may not ${r.upgrade ? 'open a worker socket' : 'call this coordinator'}: only its own pages may; start it with --allow-origin <origin> to let another site in`,
    );
  }
  const changing = r.method !== 'GET' && r.method !== 'HEAD' && r.method !== 'OPTIONS';
  const crossSite = [r.secFetchSite ?? []]
    .flat()
    .some((v) => v.toLowerCase().includes('cross-site'));
  if ((changing || r.upgrade) && r.origin === undefined && crossSite) {
    throw new RegroupError(
      'forbidden_origin',
      'a cross-site request without an Origin may not change anything here; send it from the dashboard, the SDK or the CLI',
    );
  }
}

/** Parses `--allow-origin` values; throws a plain Error naming the bad one. */
export function parseAllowedOrigins(values: readonly string[]): string[] {
  return values.map((v) => {
    const o = normalizeOrigin(v);
    if (o === null || new URL(v).pathname.length > 1) {
      throw new Error(
        `allowOrigins: "${v}" is not an origin; write scheme://host[:port], e.g. https://ops.example.com`,
      );
    }
    return o;
  });
}

/** Parses `--allow-host` values (host names, no port); throws a plain Error naming the bad one. */
export function parseAllowedHosts(values: readonly string[]): string[] {
  return values.map((v) => {
    const h = v.trim().toLowerCase();
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(h)) {
      throw new Error(
        `allowHosts: "${v}" is not a host name; write a name without scheme or port, e.g. regroup.internal`,
      );
    }
    return h;
  });
}
