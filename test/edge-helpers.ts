/**
 * Raw clients for the edge tests (test/edge.test.ts): a connection that
 * writes exactly the bytes it is given, some of them one at a time (a slow
 * client), and a one-shot HTTP request that can pick its source address
 * (Linux routes all of 127/8 to lo, so 127.0.0.2 is "another machine" for a
 * coordinator on 127.0.0.1).
 */
import http from 'node:http';
import net from 'node:net';

/** What came back on a raw connection. */
export interface RawExchange {
  /** Everything the server sent. */
  text: string;
  /** The status of the first response, 0 when none came. */
  status: number;
  /** The `error.code` of its JSON body, when it has one. */
  code: string | null;
  /** Whether the server ended the connection (false: we gave up first). */
  closedByServer: boolean;
  /** Milliseconds from the connect to the first response byte, or null. */
  firstByteMs: number | null;
  /** Milliseconds from the connect to the end of the connection (ours or the server's). */
  elapsedMs: number;
}

/** The status and `error.code` of an HTTP/1.1 response in `text`. */
export function parseResponse(text: string): { status: number; code: string | null } {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  let code: string | null = null;
  try {
    code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? null;
  } catch {
    // not (or not all) JSON
  }
  return { status: m ? Number(m[1]) : 0, code };
}

/** A connection whose bytes go out as told: `head` at once, then `trickle` one byte per `everyMs`. */
export class SlowClient {
  readonly socket: net.Socket;
  readonly done: Promise<RawExchange>;
  private text = '';
  private readonly started = Date.now();
  private firstByteMs: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    port: number,
    o: {
      head: string;
      trickle?: string;
      everyMs?: number;
      giveUpMs: number;
      localAddress?: string;
    },
  ) {
    this.socket = net.connect({
      port,
      host: '127.0.0.1',
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    this.socket.setNoDelay(true);
    let rest = o.trickle ?? '';
    this.socket.once('connect', () => {
      this.socket.write(o.head);
      this.timer = setInterval(() => {
        if (rest === '' || this.socket.destroyed) return;
        this.socket.write(rest.slice(0, 1));
        rest = rest.slice(1);
      }, o.everyMs ?? 1000);
    });
    this.socket.on('data', (d: Buffer) => {
      this.firstByteMs ??= Date.now() - this.started;
      this.text += d.toString('utf8');
    });
    this.done = new Promise((resolve) => {
      const giveUp = setTimeout(() => finish(false), o.giveUpMs);
      const finish = (byServer: boolean): void => {
        clearTimeout(giveUp);
        if (this.timer) clearInterval(this.timer);
        this.socket.destroy();
        resolve({
          text: this.text,
          ...parseResponse(this.text),
          closedByServer: byServer,
          firstByteMs: this.firstByteMs,
          elapsedMs: Date.now() - this.started,
        });
      };
      // A write after the server closed fails with EPIPE or ECONNRESET: the server closed.
      this.socket.once('error', () => finish(true));
      this.socket.once('end', () => finish(true));
      this.socket.once('close', () => finish(true));
    });
  }

  /** Whether a response has started to arrive. */
  get answered(): boolean {
    return this.text.length > 0;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.socket.destroy();
  }
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request on its own connection; `localAddress` picks the source address. */
export function request(
  url: string,
  o: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: string;
    localAddress?: string;
    timeoutMs?: number;
  },
): { done: Promise<Answer>; abort: () => void } {
  const u = new URL(url);
  const req = http.request({
    host: u.hostname,
    port: Number(u.port),
    method: o.method ?? 'GET',
    path: o.path,
    headers: {
      ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...o.headers,
    },
    agent: false,
    ...(o.localAddress ? { localAddress: o.localAddress } : {}),
  });
  const done = new Promise<Answer>((resolve, reject) => {
    req.setTimeout(o.timeoutMs ?? 15_000, () =>
      req.destroy(new Error(`${o.method ?? 'GET'} ${o.path}: no answer in time`)),
    );
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
  });
  req.end(o.body);
  return { done, abort: () => req.destroy() };
}

/** The `error.code` of a JSON error reply, or null. */
export function codeOf(a: Answer): string | null {
  try {
    return (JSON.parse(a.text) as { error?: { code?: string } }).error?.code ?? null;
  } catch {
    return null;
  }
}
