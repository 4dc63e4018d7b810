/**
 * The coordinator's HTTP server, on fastify: one route per operation of the
 * route table (src/protocol/openapi-routes.ts), registered from it with its
 * schemas, so validation and the OpenAPI document come from the same
 * declaration. The worker WebSocket (`/v1/worker`) is a route of the same
 * server; the dashboard's server-sent events are answered by its route.
 *
 * Every request passes, in this order: the per-address connection cap (on
 * connect), the edge (Host and Origin: edge.ts), the token of its route, the
 * leader check (API and worker socket), the body parser (JSON with limits),
 * the schemas, the handler. Every refusal is `{ error: { code, message } }`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { hostname } from 'node:os';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { RegroupError } from '../core/errors.js';
import { parseJson } from '../protocol/json.js';
import { WORKER_PATH } from '../protocol/constants.js';
import {
  GROUP_ID,
  OPERATIONS,
  type Operation,
  type OperationId,
} from '../protocol/openapi-routes.js';
import type { Auth, Role } from './auth.js';
import { answerClientError, capConnections, listenError } from './connections.js';
import { bodyValidator, queryValidator, routeSchema } from './route-validation.js';
import { checkEdge, type EdgePolicy } from './edge.js';
import type { ResolvedCoordinatorOptions } from './options.js';

/** One call of a route, after the edge, the token and the schemas let it through. */
export interface Call {
  /** Path parameters (`id`: a group id that matched the route's pattern). */
  params: { id?: string };
  /** Query parameters, converted and defaulted by the route's schema. */
  query: Record<string, unknown>;
  /** The body, valid against the route's schema; undefined when the route takes none or none was sent. */
  body: unknown;
  /** Aborts when the client goes away (long polls stop waiting). */
  signal: AbortSignal;
}

/** What a route answers. */
export type Answer =
  | { status: number; body: unknown }
  /** JSON text made elsewhere: sent as it is, never parsed or serialized again. */
  | { status: number; json: string }
  | { status: number; text: string; type: string; headers?: Record<string, string> };

/** The handler of one operation; null when it answered on its own (a stream). */
export type RouteHandler = (
  c: Call,
  http: { request: FastifyRequest; reply: FastifyReply },
) => Promise<Answer | null>;

export interface ServerDeps {
  options: ResolvedCoordinatorOptions;
  auth: Auth;
  handlers: Record<OperationId, RouteHandler>;
  /** The API and the worker socket are served only while leading: the refusal otherwise (`not_leader`). */
  notLeading(): { error: RegroupError; leaderUrl: string | null } | null;
  /** Whether the dashboard's data needs the client token (`--dashboard token`). */
  dashboardNeedsToken(): boolean;
  /** A worker socket after the upgrade. */
  onWorkerSocket(ws: WebSocket): void;
}

/** The header a standby puts on its `not_leader` answers: where the leader is. */
export const LEADER_HEADER = 'regroup-leader';

const GROUP_ID_PATTERN = (GROUP_ID as unknown as { pattern: string }).pattern;
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

const GROUP_ID_RULE =
  'a group id is 1 to 100 letters, digits, "_" or "-" (as submit printed it, like g_x7Yh2xk9Lq1); check the id';
const GROUP_PATH = /^\/v1\/groups\/([^/]+)(?:\/(?:tasks|seal|cancel|retry|wait|finished))?$/;

/**
 * A group route whose id cannot be an id (`/v1/groups/bad%20id!`) matches no
 * route; the user asked for a group, so say that the id is wrong, not that
 * the route is missing.
 */
export function malformedGroupId(path: string): RegroupError | null {
  const m = GROUP_PATH.exec(path);
  if (!m) return null;
  let id = m[1] ?? '';
  try {
    id = decodeURIComponent(id);
  } catch {
    // Kept as sent: a bad escape is itself not an id.
  }
  if (new RegExp(GROUP_ID_PATTERN).test(id)) return null;
  const shown = JSON.stringify(id.length > 100 ? `${id.slice(0, 100)}...` : id);
  return new RegroupError('group_not_found', `no group with id ${shown}: ${GROUP_ID_RULE}`);
}

/** The fastify URL of an OpenAPI path: `{id}` becomes a parameter with the group id pattern. */
export function routeUrl(path: string): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => `:${name}(${GROUP_ID_PATTERN})`);
}

/** A route as fastify holds it: an operation of the table, the worker socket, or a 405 for other methods. */
export interface ServedRoute {
  method: string;
  url: string;
  operationId: OperationId | null;
  kind: 'operation' | 'worker' | 'not_allowed';
}

export interface EdgeServer {
  app: FastifyInstance;
  /** Every route registered, as fastify has it (HEAD routes for GETs included). */
  readonly routes: readonly ServedRoute[];
  /** Resolves with the bound address; rejects with `port_in_use` or `listen_failed`. */
  listen(): Promise<void>;
  close(): Promise<void>;
}

export function buildServer(d: ServerDeps): EdgeServer {
  const o = d.options;
  const t = o.timeouts;
  const factory = (handler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
    const opts = {
      // node refuses a headers timeout longer than the request's.
      headersTimeout: Math.min(t.headersMs, t.requestMs),
      requestTimeout: t.requestMs,
      keepAliveTimeout: t.idleMs,
      // How often node looks for connections past headersTimeout/requestTimeout.
      connectionsCheckingInterval: Math.min(1000, t.headersMs, t.requestMs),
    };
    const server = o.tls
      ? createTlsServer({ ...opts, cert: o.tls.cert, key: o.tls.key }, handler)
      : createServer(opts, handler);
    capConnections(server, o.maxConnectionsPerAddress, o.tls !== null);
    return server;
  };
  const app = Fastify({
    serverFactory: factory,
    logger: false,
    bodyLimit: o.limits.maxBodyBytes,
    keepAliveTimeout: t.idleMs,
    requestTimeout: t.requestMs,
    forceCloseConnections: true,
    return503OnClosing: true,
    // Group ids are at most 100 characters; the route patterns check them.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    clientErrorHandler: answerClientError,
    // A target fastify cannot route (a bad % escape, a parameter too long):
    // the edge first, then 404 in our shape.
    frameworkErrors: (err, request, reply) => {
      try {
        edge(request);
      } catch (e) {
        sendError(request, reply, e as RegroupError);
        return;
      }
      sendError(request, reply, toRegroupError(err, request));
    },
  });
  const policy: EdgePolicy = {
    allowHosts: o.allowHosts,
    allowOrigins: o.allowOrigins,
    advertisedHost: o.advertiseUrl ? new URL(o.advertiseUrl).hostname.toLowerCase() : null,
    machineHost: hostname().toLowerCase() || null,
    tls: o.tls !== null,
  };

  // No valid body holds an array or a string larger than these: the inputs
  // array has at most maxTasksPerRequest items, an input of maxInputBytes at
  // most maxInputBytes / 2 (`[0,0,...]`), and no string is longer than an input.
  const shape = {
    maxArrayItems: Math.max(o.limits.maxTasksPerRequest, Math.floor(o.limits.maxInputBytes / 2)),
    maxStringLength: o.limits.maxInputBytes,
  };
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
    const s = text as string;
    if (s.length === 0) return done(null, undefined);
    try {
      // An input or option value sits two levels down in a body ({ "inputs": [X] }).
      const body = parseJson(s, 'the request body', { maxDepth: o.limits.maxDepth + 2, shape });
      if (body === null) {
        throw new RegroupError(
          'validation_failed',
          'the request body is JSON null: send a JSON object ({} where the route takes no fields)',
        );
      }
      done(null, body);
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser('*', (req, _payload, done) => {
    done(unsupportedType(req.headers['content-type']), undefined);
  });
  app.setValidatorCompiler(({ schema, httpPart, url, method }) => {
    const op = byRoute.get(`${String(method)} ${url}`);
    if (httpPart === 'querystring') return queryValidator(schema);
    if (httpPart === 'body') return bodyValidator(schema, op?.body?.what ?? 'body');
    return () => true;
  });
  app.setErrorHandler((err, request, reply) => {
    const e = toRegroupError(err, request);
    if (e.code === 'internal') {
      o.logger('error', 'request failed', { url: request.url, err: (err as Error).message });
    }
    sendError(request, reply, e);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    sendError(
      request,
      reply,
      malformedGroupId(path) ??
        new RegroupError(
          'not_found',
          `no route ${request.method} ${path.slice(0, 200)}; see docs/protocol.md for the API`,
        ),
    );
  });

  // The edge, for every request (404s and upgrades included).
  function edge(request: FastifyRequest): void {
    const h = request.headers;
    checkEdge(
      {
        method: request.method,
        host: h.host,
        origin: h.origin,
        secFetchSite: h['sec-fetch-site'],
        upgrade: h.upgrade !== undefined,
      },
      policy,
    );
  }
  app.addHook('onRequest', async (request, reply) => {
    const h = request.headers;
    edge(request);
    if (h.origin !== undefined && o.allowOrigins.includes(h.origin.toLowerCase())) {
      allowCors(reply, h.origin);
      if (request.method === 'OPTIONS') return reply.code(204).send();
    }
    if (h.upgrade !== undefined && request.url.split('?')[0] !== WORKER_PATH) {
      throw new RegroupError('not_found', `WebSocket upgrades are served at ${WORKER_PATH} only`);
    }
    return undefined;
  });

  const routes: ServedRoute[] = [];
  app.addHook('onRoute', (r) => {
    const cfg = (r.config ?? {}) as { operationId?: OperationId; kind?: ServedRoute['kind'] };
    for (const method of [r.method].flat()) {
      routes.push({
        method,
        url: r.url,
        operationId: cfg.operationId ?? null,
        kind: cfg.kind ?? 'operation',
      });
    }
  });
  const byRoute = new Map<string, Operation>();
  const methodsByUrl = new Map<string, Set<string>>();
  void app.register(websocket, {
    options: { maxPayload: o.limits.maxMessageBytes },
    preClose: (done) => {
      for (const ws of app.websocketServer.clients) ws.terminate();
      done();
    },
  });
  void app.register(async (scope) => {
    for (const op of OPERATIONS) {
      const url = routeUrl(op.path);
      const method = op.method.toUpperCase();
      byRoute.set(`${method} ${url}`, op);
      (methodsByUrl.get(url) ?? methodsByUrl.set(url, new Set()).get(url)!).add(method);
      scope.route({
        method,
        url,
        schema: routeSchema(op),
        config: { operationId: op.operationId, kind: 'operation' },
        ...(op.body?.maxBytes ? { bodyLimit: op.body.maxBytes } : {}),
        onRequest: guard(op.auth === true ? 'client' : op.auth, op.auth === true),
        ...(op.body?.required ? { preValidation: requireBody } : {}),
        handler: async (request, reply) => {
          const ac = new AbortController();
          reply.raw.on('close', () => ac.abort());
          const call: Call = {
            params: request.params as { id?: string },
            query: (request.query ?? {}) as Record<string, unknown>,
            body: request.body,
            signal: ac.signal,
          };
          const answer = await d.handlers[op.operationId](call, { request, reply });
          if (answer !== null) send(reply, answer);
          return reply;
        },
      });
    }
    scope.route({
      method: 'GET',
      url: WORKER_PATH,
      config: { kind: 'worker' },
      onRequest: guard('worker', true),
      handler: () => {
        throw new RegroupError(
          'not_found',
          `${WORKER_PATH} is the workers' WebSocket: connect with \`regroup worker\` (docs/protocol.md)`,
        );
      },
      wsHandler: (socket) => d.onWorkerSocket(socket),
    });
    methodsByUrl.set(WORKER_PATH, new Set(['GET']));
    // A path that exists answers other methods 405, as the table says which it takes.
    for (const [url, allowed] of methodsByUrl) {
      const others = METHODS.filter((m) => !allowed.has(m));
      scope.route({
        method: others,
        url,
        config: { kind: 'not_allowed' },
        handler: (request) => {
          throw new RegroupError(
            'method_not_allowed',
            `${request.method} is not allowed on ${request.url.split('?')[0]}; use ${[...allowed].join(' or ')}`,
          );
        },
      });
    }
  });

  /** The token of the route, then (API and worker socket) the leader check. */
  function guard(role: Role | 'dashboard' | false, leaderOnly: boolean) {
    return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      if (role === 'client' || role === 'worker') await d.auth.check(request.raw, role);
      else if (role === 'dashboard' && d.dashboardNeedsToken())
        await d.auth.check(request.raw, 'client');
      if (!leaderOnly) return;
      const refusal = d.notLeading();
      if (refusal) {
        if (refusal.leaderUrl) void reply.header(LEADER_HEADER, refusal.leaderUrl);
        throw refusal.error;
      }
    };
  }

  function requireBody(request: FastifyRequest): Promise<void> {
    if (request.body !== undefined) return Promise.resolve();
    const type = request.headers['content-type'];
    return Promise.reject(
      type === undefined
        ? unsupportedType(undefined)
        : new RegroupError('invalid_json', 'the request body is empty; send a JSON object'),
    );
  }

  function toRegroupError(err: unknown, request: FastifyRequest): RegroupError {
    if (err instanceof RegroupError) return err;
    const f = err as { code?: string; statusCode?: number; message?: string };
    switch (f.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE': {
        const limit = request.routeOptions.bodyLimit ?? o.limits.maxBodyBytes;
        return new RegroupError(
          'body_too_large',
          limit < o.limits.maxBodyBytes
            ? `the request body is larger than ${limit} bytes: this route takes no body, or {}`
            : `the request body is larger than ${limit} bytes (maxBodyBytes); split the request or start the server with a larger --max-body-bytes`,
        );
      }
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return unsupportedType(request.headers['content-type']);
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return new RegroupError(
          'bad_request',
          'the body is not as long as its Content-Length says; send it whole',
        );
      case 'FST_ERR_MAX_PARAM_LENGTH':
        return (
          malformedGroupId(request.url.split('?')[0] ?? '') ??
          new RegroupError(
            'not_found',
            'the request target is not a valid URL path; see docs/protocol.md',
          )
        );
      case 'FST_ERR_BAD_URL':
        return new RegroupError(
          'not_found',
          'the request target is not a valid URL path; see docs/protocol.md',
        );
      case undefined:
      default:
        if (f.statusCode === 408 || (err as Error).name === 'RequestTimeoutError')
          return new RegroupError('request_timeout', 'the request took too long to arrive');
        if (typeof f.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500)
          return new RegroupError('bad_request', String(f.message ?? 'bad request'));
        return new RegroupError('internal', `internal error: ${f.message ?? String(err)}`);
    }
  }

  return {
    app,
    routes,
    async listen(): Promise<void> {
      try {
        await app.listen({ port: o.port, host: o.host });
      } catch (e) {
        throw listenError(e, o.host, o.port);
      }
    },
    async close(): Promise<void> {
      await app.close();
    },
  };
}

function unsupportedType(type: string | undefined): RegroupError {
  const t = (type ?? '').split(';')[0]!.trim().toLowerCase();
  return new RegroupError(
    'unsupported_media_type',
    `send the body as JSON with "Content-Type: application/json" (got "${t.slice(0, 100) || 'none'}")`,
  );
}

function allowCors(reply: FastifyReply, origin: string): void {
  void reply.header('access-control-allow-origin', origin);
  void reply.header('vary', 'origin');
  void reply.header('access-control-allow-methods', 'GET, POST');
  void reply.header('access-control-allow-headers', 'authorization, content-type');
  void reply.header('access-control-expose-headers', LEADER_HEADER);
  void reply.header('access-control-max-age', '600');
}

function send(reply: FastifyReply, a: Answer): void {
  void reply.code(a.status);
  if ('json' in a) {
    void reply.type('application/json; charset=utf-8').send(a.json);
  } else if ('text' in a) {
    if (a.headers) void reply.headers(a.headers);
    void reply.type(a.type).send(a.text);
  } else {
    void reply.type('application/json; charset=utf-8').send(JSON.stringify(a.body));
  }
}

/** Every refusal: `{ error: { code, message } }`; a request whose body was not read closes its connection. */
function sendError(request: FastifyRequest, reply: FastifyReply, e: RegroupError): void {
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  // A body not read (or an upgrade refused) must not keep its connection.
  if (!request.raw.complete || request.headers.upgrade !== undefined)
    void reply.header('connection', 'close');
  // A refused upgrade's response is written on the raw socket, outside node's
  // request cycle: nothing else would end it.
  if (request.headers.upgrade !== undefined) {
    const socket = request.raw.socket;
    reply.raw.once('finish', () => socket.end());
  }
  void reply
    .code(e.status)
    .type('application/json; charset=utf-8')
    .send(JSON.stringify(e.toWire()));
}
