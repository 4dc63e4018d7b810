/**
 * A raw worker-protocol peer for tests: it sends exactly what a misbehaving
 * (or hostile) worker would, and takes the coordinator's messages one by one.
 */
import WebSocket from 'ws';
import type { CoordinatorMessage } from '../src/protocol/worker.js';
import { until } from '../src/testing/procs.js';

type Message<T extends CoordinatorMessage['t']> = Extract<CoordinatorMessage, { t: T }>;

export class RawWorker {
  readonly ws: WebSocket;
  readonly inbox: CoordinatorMessage[] = [];

  constructor(base: string) {
    this.ws = new WebSocket(base.replace('http', 'ws') + '/v1/worker');
    this.ws.on('message', (d: Buffer) =>
      this.inbox.push(...(JSON.parse(d.toString('utf8')) as CoordinatorMessage[])),
    );
  }

  async open(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return;
    await new Promise((r) => this.ws.once('open', r));
  }

  /** Opens, says hello and beats (so it stays alive, not suspect) until its socket is gone; gives its worker id. */
  async hello(name: string, handlers: string[], slots: number): Promise<string> {
    await this.open();
    this.send({ t: 'hello', protocol: 1, name, handlers, slots, labels: [] });
    const { workerId, heartbeatMs } = await this.take('welcome');
    const beat = setInterval(() => this.send({ t: 'beat' }), heartbeatMs / 2);
    this.ws.on('close', () => clearInterval(beat));
    return workerId;
  }

  send(...m: unknown[]): void {
    this.ws.send(JSON.stringify(m));
  }

  /** The first message of type `t` received (waiting for it), taken out of the inbox. */
  take<T extends CoordinatorMessage['t']>(t: T): Promise<Message<T>> {
    return until(`a ${t} message`, () => {
      const i = this.inbox.findIndex((m) => m.t === t);
      return i >= 0 ? (this.inbox.splice(i, 1)[0] as Message<T>) : null;
    });
  }

  close(): void {
    this.ws.terminate();
  }
}
