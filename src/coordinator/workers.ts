/**
 * The worker gateway: worker sessions over the protocol of
 * src/protocol/worker.ts. Two parts: worker-protocol.ts (checking,
 * dispatching and acknowledging messages) and worker-lifecycle.ts (hello and
 * resume, drain, leave, death, the sweep with its run deadlines, lost runs).
 */
import type WebSocket from 'ws';
import type { CoordinatorMessage } from '../protocol/worker.js';
import type { ClaimedTask, RevokedRun } from '../store/store.js';
import type { Engine } from './engine.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import type { Link, Session, Sessions } from './sessions.js';
import type { CoordinatorEvents, Emitter } from './emitter.js';
import { WorkerLifecycle, type Conn } from './worker-lifecycle.js';
import { WorkerProtocol } from './worker-protocol.js';
import { WorkerTree } from './worker-tree.js';
import type { Api } from './api.js';

export type { Conn } from './worker-lifecycle.js';
export { jsonBytes } from './worker-runs.js';

export class WorkerGateway {
  private readonly life: WorkerLifecycle;
  private readonly protocol: WorkerProtocol;
  private readonly tree: WorkerTree;

  constructor(
    o: ResolvedCoordinatorOptions,
    engine: Engine,
    readonly sessions: Sessions,
    emitter: Emitter<CoordinatorEvents>,
    api: Pick<Api, 'handlers'>,
  ) {
    this.life = new WorkerLifecycle(o, engine, sessions, emitter);
    this.tree = new WorkerTree(o, engine, o.store, api);
    this.protocol = new WorkerProtocol(o, engine, this.life, this.tree);
  }

  start(): void {
    this.life.start();
  }

  stop(): void {
    this.life.stop();
  }

  /** A frame arrived on a connection. Bad messages get an `error` message; the connection stays. */
  onFrame(conn: Conn, messages: unknown[]): void {
    this.protocol.onFrame(conn, messages);
  }

  onClose(conn: Conn): void {
    this.tree.onClose(conn);
    this.life.onClose(conn);
  }

  /** Judges every session; declares the dead ones dead; ends runs past their deadline. */
  sweep(): void {
    this.life.sweep();
  }

  declareDead(s: Session, now: number): void {
    this.life.declareDead(s, now);
  }

  /** After a tick: claimed runs go out, ended runs are revoked. */
  afterTick(claimed: ClaimedTask[], revoked: RevokedRun[]): void {
    this.life.afterTick(claimed, revoked);
  }
}

/** A worker socket as a session's Link: frames are JSON arrays, counted as they are sent. */
export function socketLink(ws: WebSocket): Link {
  let framesSent = 0;
  return {
    send(messages: CoordinatorMessage[]): void {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(JSON.stringify(messages));
      framesSent++;
    },
    close(code: number, reason: string): void {
      ws.close(code, reason);
    },
    get framesSent(): number {
      return framesSent;
    },
  };
}
