/**
 * The coordinator's sockets before and around HTTP: the per-address
 * connection cap, node's own client errors (timeouts, bad HTTP) in our error
 * shape, and the errors of listening.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { RegroupError } from '../core/errors.js';

/**
 * Errors node raises before a request reaches fastify: a request past
 * headersTimeout or requestTimeout (408), headers too large (431), bytes that
 * are not HTTP (400). Answered in our shape, then the connection is closed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, text, e] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [
          408,
          'Request Timeout',
          new RegroupError(
            'request_timeout',
            'the request did not arrive in time (headers within timeouts.headersMs, the whole request within timeouts.requestMs): send it at once',
          ),
        ]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [
            431,
            'Request Header Fields Too Large',
            new RegroupError('bad_request', 'the request headers are too large'),
          ]
        : [
            400,
            'Bad Request',
            new RegroupError('bad_request', 'the request is not valid HTTP/1.1'),
          ];
  const body = JSON.stringify(e.toWire());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export function listenError(e: unknown, host: string, port: number): RegroupError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new RegroupError(
      'port_in_use',
      `port ${port} on ${host} is in use (another coordinator, or another program): stop it, or choose another --port`,
      { cause: e },
    );
  }
  return new RegroupError(
    'listen_failed',
    `cannot listen on ${host}:${port} (${code ?? (e as Error).message}): check --host and --port${code === 'EACCES' ? ' (ports below 1024 need privileges)' : ''}`,
    { cause: e },
  );
}

/**
 * At most `max` connections open at once from one address (0: no cap). A
 * connection over the cap gets a 429 and is closed before it is read.
 */
export function capConnections(server: Server, max: number, tls: boolean): void {
  if (max <= 0) return;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const addr = socket.remoteAddress ?? 'unknown';
    const n = (open.get(addr) ?? 0) + 1;
    if (n > max) {
      if (tls) {
        socket.destroy();
        return;
      }
      const body = JSON.stringify(
        new RegroupError(
          'too_many_requests',
          `more than ${max} connections from ${addr} (maxConnectionsPerAddress): close some, or start the server with a larger --max-connections-per-address`,
        ).toWire(),
      );
      socket.end(
        `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      socket.destroySoon();
      return;
    }
    open.set(addr, n);
    socket.once('close', () => {
      const left = (open.get(addr) ?? 1) - 1;
      if (left <= 0) open.delete(addr);
      else open.set(addr, left);
    });
  });
}
